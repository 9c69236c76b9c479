"""The error function, elementwise, for the exact GELU.

NumPy has no ``erf`` and SciPy is not a dependency, so ``erf`` runs ``math.erf`` over the array in
a numba kernel. ``erf_reference`` is the plain Python loop beside it; a test checks they agree.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _erf_kernel(flat_in, flat_out):
    for i in range(flat_in.size):
        flat_out[i] = math.erf(flat_in[i])


def erf(x: np.ndarray) -> np.ndarray:
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise, same dtype and shape as x."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _erf_kernel(flat, out)
    return out.reshape(x.shape)


def erf_reference(x: np.ndarray) -> np.ndarray:
    """The same values with a Python loop over ``math.erf``."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([math.erf(v) for v in x.ravel()], dtype=np.float64).reshape(x.shape)
