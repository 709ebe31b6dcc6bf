"""The training engine: TrainConfig, the loop and its callbacks, job states, the JobHandle seam,
the manager and its backends."""
