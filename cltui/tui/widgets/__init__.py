"""Widgets more than one screen uses: charts, the header, tables."""
