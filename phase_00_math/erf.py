"""The error function and its complement, elementwise, for the exact GELU.

NumPy has no ``erf`` and SciPy is not a dependency, so ``erf`` and ``erfc`` run ``math.erf`` and
``math.erfc`` over the array in numba kernels. ``erf_reference`` and ``erfc_reference`` are the
plain Python loops beside them; a test checks that each pair agrees.

Why both: the normal CDF ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` loses its digits for x << 0,
where ``erf`` is close to -1 and ``1 + erf`` cancels. ``Phi(x) = erfc(-x / sqrt 2) / 2`` is
accurate in both tails.
"""

import math

import numpy as np
from numba import njit

INV_SQRT_2 = 1.0 / math.sqrt(2.0)


@njit(cache=True)
def _erf_kernel(flat_in, flat_out):
    for i in range(flat_in.size):
        flat_out[i] = math.erf(flat_in[i])


@njit(cache=True)
def _erfc_kernel(flat_in, flat_out):
    for i in range(flat_in.size):
        flat_out[i] = math.erfc(flat_in[i])


@njit(cache=True)
def _normal_cdf_kernel(flat_in, flat_out):
    for i in range(flat_in.size):
        flat_out[i] = 0.5 * math.erfc(-flat_in[i] * INV_SQRT_2)


def _apply(kernel, x) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    kernel(flat, out)
    return out.reshape(x.shape)


def erf(x: np.ndarray) -> np.ndarray:
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise, same dtype and shape as x."""
    return _apply(_erf_kernel, x)


def erfc(x: np.ndarray) -> np.ndarray:
    """erfc(x) = 1 - erf(x), computed without the cancellation; same dtype and shape as x."""
    return _apply(_erfc_kernel, x)


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) = P(Z <= x) for Z ~ N(0, 1), accurate in both tails: ``normal_cdf_reference`` in
    one numba loop, which writes one array of x's size where the composition makes three."""
    return _apply(_normal_cdf_kernel, x)


def normal_cdf_reference(x: np.ndarray) -> np.ndarray:
    """Phi(x) = erfc(-x / sqrt 2) / 2, composed from ``erfc``."""
    return 0.5 * erfc(-np.asarray(x) * INV_SQRT_2)


def erf_reference(x: np.ndarray) -> np.ndarray:
    """``erf`` with a Python loop over ``math.erf``."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([math.erf(v) for v in x.ravel()], dtype=np.float64).reshape(x.shape)


def erfc_reference(x: np.ndarray) -> np.ndarray:
    """``erfc`` with a Python loop over ``math.erfc``."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([math.erfc(v) for v in x.ravel()], dtype=np.float64).reshape(x.shape)
