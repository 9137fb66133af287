"""The built-in presets: TOML files shipped inside the package (core/presets.py reads them)."""
