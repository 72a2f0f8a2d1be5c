"""The machine a run uses: device, threads, AMP/memory-format measurement, distributed processes, signals."""
