"""Training engine: config, loop, checkpoints, early stopping and run bookkeeping."""
import os

# OpenMP worker threads that spin while waiting collapse when another process holds one of the
# cores they expect (measured here: 2 threads fell from ~2,200 to ~400 img/s with the other core
# busy). Sleeping waits cost nothing measurable on an idle machine and avoid the collapse. It only
# takes effect if set before torch loads OpenMP, which is why it lives in this package's import;
# a value the user exported wins. See bench/threads.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
