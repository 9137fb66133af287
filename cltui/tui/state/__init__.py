"""Textual-free state of the TUI: formats, run queries, the events.jsonl follower. The CLI uses formats too."""
