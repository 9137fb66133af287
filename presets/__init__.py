"""The built-in presets: TOML files shipped inside the package (core/schema/presets.py reads them)."""
