"""Textual-free state of the TUI: formats, run queries, the live fold (live), the runs table's columns and cells
(runs_table), the runs folder scan (runs_folder), the compose form's fields (form), what is kept in `.cltui/`
(choices) and the events.jsonl follower. The CLI uses formats too."""
