"""Studies (compare) and sweeps: plans, study files, tables. Torch-free."""
