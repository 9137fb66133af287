"""Merging two trained networks into one (`cltui merge`)."""
