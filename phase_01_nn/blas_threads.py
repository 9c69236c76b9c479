"""One BLAS thread for the small-matrix demos, unless the user has chosen otherwise.

The demos and experiments of phases 1 to 3 multiply small matrices (a recurrent step is
(B, H) @ (H, 4H)), too small to split across threads; on a busy two-core machine a threaded
OpenBLAS spends its time waiting. Measured here: spirals 2.2 s with one thread against up to 40 s
with two; the adding problem's LSTM step 30 ms against 135-200 ms; the char LM's step 154 ms
against about 1 s. The variables are read when NumPy loads its BLAS, so call
``use_one_blas_thread()`` before anything imports NumPy (this module imports nothing that does).
"""

import os

VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def use_one_blas_thread() -> None:
    """Set each BLAS thread-count variable to 1 where the environment does not set it."""
    for variable in VARIABLES:
        os.environ.setdefault(variable, "1")
