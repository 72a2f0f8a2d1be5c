"""Where a run reports: metrics.csv and curves, TensorBoard, the results database, the console."""
