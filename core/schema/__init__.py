"""The run's schema: config sections and their limits, the methods' typed parameters, presets. Torch-free."""
