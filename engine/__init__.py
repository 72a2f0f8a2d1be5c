"""Training: the loop, the trainer, run folders, early stopping, EMA, the LR finder."""
