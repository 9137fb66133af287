"""The Textual TUI: the app (app.py), its screens (runs, compose, live, detail, dreams, compare) and charts.

Nothing here imports torch: training runs in the worker process and reaches the UI through run folders.
"""
