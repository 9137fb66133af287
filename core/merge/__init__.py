"""Merging two trained networks into one (`cltui merge`): settings.py (the settings), teachers.py (the two runs),
units.py (the unit algebra and hard-concrete gates), anatomy.py (how each model kind is taken apart, joined and
cut), merger.py (the merge itself, run through the engine's run lifecycle)."""
