"""cltui core: the continual-learning engine (config, data, models, methods, training loop, metrics, run store,
worker). Never imports UI libraries."""
