"""The training engine: TrainConfig, jobs in background threads, their manager and callbacks."""
