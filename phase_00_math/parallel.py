"""numba's threads: the thread count the user chose for the BLAS, and a pool that sleeps.

The fused kernels of the NumPy models (``prange`` loops such as the exact GELU's) run on numba's
own threads. Two settings, both made once, before numba starts its threads:

- The count follows the BLAS's. A run asked for one thread (``OMP_NUM_THREADS=1``,
  ``--threads 1``, or phase 1's ``use_one_blas_thread``) means one thread for the whole step;
  otherwise a one-thread benchmark of NumPy against torch would hand NumPy's elementwise work a
  second core. ``NUMBA_NUM_THREADS``, where set, wins.
- The pool is numba's ``workqueue`` layer, whose idle threads sleep. Its default here, OpenMP,
  keeps its threads spinning for a while after each loop, and OpenBLAS keeps its own spinning
  after each matmul; on a machine with as many cores as threads the two pools then take turns
  on the cores. Measured on phase 6's ``larger`` GPT, two threads, one training step: 1055 ms
  with OpenMP, 913 ms with the kernels on one thread, 816 ms with ``workqueue``. Its limit: a
  ``prange`` kernel must not be called from two Python threads at once (numba stops the
  process), and none of this course's is. ``NUMBA_THREADING_LAYER``, where set, wins.
"""

from __future__ import annotations

import os

BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def blas_threads_requested() -> int | None:
    """The thread count the environment gives the BLAS (the first of ``BLAS_VARIABLES`` that
    holds a positive whole number), or None where none does."""
    for variable in BLAS_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def configure_numba_threads() -> int:
    """Chooses the sleeping ``workqueue`` pool (before numba starts one) and sets numba's
    thread count for the calling thread to the BLAS's, capped at what numba can start, unless
    the environment sets either. Returns the thread count in use."""
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"
    requested = blas_threads_requested()
    if requested is not None and "NUMBA_NUM_THREADS" not in os.environ:
        numba.set_num_threads(min(requested, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()
