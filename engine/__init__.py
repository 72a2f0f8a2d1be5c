"""Training engine: config, loop, checkpoints, early stopping and run bookkeeping."""
