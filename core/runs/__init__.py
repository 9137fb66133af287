"""Runs as records and processes: the run store and its record, events, the figures of a run, the worker, its pool,
the Ray executor, CPU threads. Torch-free."""
