"""The engine that imports torch: the training loop, scenarios, models, data, generation runs, pre-training, dream
scoring."""
