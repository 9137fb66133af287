"""The processes that train runs: the worker (spawned, or detached for the TUI), the pool that keeps workers
across a study's runs, the Ray executor. They start the engine; the engine never starts them."""
