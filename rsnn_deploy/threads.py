"""How many threads a command uses when the user gave none: the cores the machine has idle.

Why it exists
-------------
Thread pools that wait for a core another process holds make every small kernel wait. On a
loaded 2-core machine torch's default (all cores) made a training epoch 3.7x slower than one
thread, and numpy's OpenBLAS (which also starts one thread per core) made the tiny
``[B*T, C] @ [C, cores]`` products of ``cost.count_trace`` 16x slower: 1.37 s against
0.086 s for 2,560 sfmnist-row traces with one other job running (AMD EPYC Zen 4, 2 cores).
:func:`default_threads` therefore counts only the cores the 1-minute load average leaves
idle, at least one, and :func:`limit_blas_threads` caps numpy's BLAS to that (through
threadpoolctl, the library scikit-learn uses for the same thing). This module imports
neither torch nor numpy, so the command line can call it before either loads.
"""

from __future__ import annotations

import math
import os

__all__ = ["BLAS_THREAD_VARIABLES", "default_threads", "limit_blas_threads"]

# a user who set one of these chose the BLAS thread count; it is left alone
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_threads() -> tuple[int, str]:
    """Threads when the user gave none: the cores the 1-minute load average leaves idle, >= 1,
    and the reason in words (``rsnn-deploy train`` prints it)."""
    cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1, "load average unknown"
    idle = max(1, min(cpus, math.floor(cpus - load + 0.5)))
    return idle, f"{cpus} CPUs, load average {load:.2f}: {idle} for the idle cores, at least 1; --threads to override"


def limit_blas_threads(threads: int | None = None) -> int | None:
    """Cap numpy's BLAS pool to ``threads`` (default: :func:`default_threads`); returns the cap,
    or None where the user's environment sets it (:data:`BLAS_THREAD_VARIABLES`).

    Loads numpy (the pool exists only once its BLAS library is loaded); the cap holds for the
    rest of the process.
    """
    if any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        return None
    import numpy  # noqa: F401  (loads OpenBLAS, whose pool threadpoolctl then limits)
    from threadpoolctl import threadpool_limits

    n = default_threads()[0] if threads is None else max(1, int(threads))
    threadpool_limits(limits=n, user_api="blas")
    return n
