"""The error function and its complement, elementwise, for the exact GELU.

NumPy has no ``erf`` and SciPy is not a dependency, so ``erf`` and ``erfc`` run ``math.erf`` and
``math.erfc`` over the array in numba kernels. ``erf_reference`` and ``erfc_reference`` are the
plain Python loops beside them; a test checks that each pair agrees.

Why both: the normal CDF ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` loses its digits for x << 0,
where ``erf`` is close to -1 and ``1 + erf`` cancels. ``Phi(x) = erfc(-x / sqrt 2) / 2`` is
accurate in both tails.

The fast path for float32 (what the GPTs train in): ``math.erfc`` is a scalar library call, so
its loop runs one element at a time, about 12 ns each here, which made the exact GELU a fifth of a
``shakespeare-char`` training step. ``normal_cdf`` therefore evaluates float32 inputs with a
fitted form that vectorises,

    erfc(z) = t Q(t) exp(-z^2),  t = 1 / (1 + z / 2),  z = |x| / sqrt 2,

where Q is a polynomial of degree 10 fitted here (``fit_erfc_polynomial``) to the scaled
function erfc(z) exp(z^2) / t; the change of variable t is the one of Numerical Recipes' ``erfcc``
(Press et al., section 6.2), with our own fit. The exponential is ``exp_nonpositive``, written in
plain arithmetic so that the whole loop compiles to SIMD code, and exp(-z^2) = exp(-x^2 / 2) is
also the numerator of the normal density, which the GELU's backward needs: one exponential gives
both (``normal_cdf_and_density``). Float64 arithmetic inside, float32 out: within 1 float32 ulp
of the float64 reference. float64 inputs keep ``math.erfc``, which the gradient checks need.
"""

import math

import numpy as np
from numba import njit

INV_SQRT_2 = 1.0 / math.sqrt(2.0)


@njit(cache=True, nogil=True)
def _erf_kernel(flat_in, flat_out):
    for i in range(flat_in.size):
        flat_out[i] = math.erf(flat_in[i])


@njit(cache=True, nogil=True)
def _erfc_kernel(flat_in, flat_out):
    for i in range(flat_in.size):
        flat_out[i] = math.erfc(flat_in[i])


@njit(cache=True, nogil=True)
def _normal_cdf_kernel(flat_in, flat_out):
    for i in range(flat_in.size):
        flat_out[i] = 0.5 * math.erfc(-flat_in[i] * INV_SQRT_2)


# erfc(z) = t Q(t) exp(-z^2) with t = 1 / (1 + z / 2): Q's coefficients, constant term first, as
# ``fit_erfc_polynomial()`` prints them. For z > ERFC_Z_MAX, Phi(-z sqrt 2) < 1e-53 is 0 in
# float32, so z is clipped there and t stays in the fitted range [1 / (1 + ERFC_Z_MAX / 2), 1].
ERFC_Z_MAX = 11.0
ERFC_POLYNOMIAL = (
    0.2820882651577738,
    0.2822627117014608,
    0.2450303995590746,
    0.18670267753319184,
    0.0499803421784577,
    0.04912097254523063,
    -0.04693060545277858,
    -0.26012110964466034,
    0.35967860735595414,
    -0.1819263466180107,
    0.034114087999585645,
)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def fit_erfc_polynomial(degree: int = 10, z_max: float = ERFC_Z_MAX,
                        points: int = 4000) -> np.ndarray:
    """Q's coefficients (constant first): a least-squares Chebyshev fit, on Chebyshev points of
    t in [1 / (1 + z_max / 2), 1], of erfc(z) exp(z^2) / t. That function is smooth in t: it is
    1 at t = 1 (z = 0) and tends to 1 / (2 sqrt pi) as z -> infinity, where erfc(z) ~ exp(-z^2) /
    (z sqrt pi). Degree 10 leaves a relative error of about 6e-9 in erfc, a tenth of float32's
    rounding (6e-8)."""
    t_min = 1.0 / (1.0 + z_max / 2.0)
    u = np.cos(np.pi * (np.arange(points) + 0.5) / points)
    t = t_min + (1.0 - t_min) * (u + 1.0) / 2.0
    z = 2.0 * (1.0 - t) / t
    target = np.array([math.erfc(zi) * math.exp(zi * zi) / ti
                       for zi, ti in zip(z, t, strict=True)])
    fit = np.polynomial.Chebyshev.fit(t, target, degree, domain=[t_min, 1.0])
    return fit.convert(kind=np.polynomial.Polynomial).coef


EXP_MIN = -128.0  # exp(-128) = 2.6e-56: below it every exp is 0 in float32
EXP_SQUARINGS = 7  # 2^7 = 128: a / 128 lies in [-1, 0]
EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(13))  # exp(u), |u| <= 1/2, to 2e-14
EXP_MINUS_HALF = math.exp(-0.5)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def exp_nonpositive(a):
    """exp(a) for a <= 0 in float64 arithmetic that vectorises, 0 below ``EXP_MIN``.

    numba compiles ``math.exp`` to a call of the C library's scalar exp (without Intel's SVML
    it has no vector exp), and one call per element stops a loop from running on SIMD lanes.
    So: exp(a) = exp(a / 128)^128, seven squarings, and exp(a / 128) = exp(-1/2) exp(u) with
    u = a / 128 + 1/2 in [-1/2, 1/2], where exp(u)'s Taylor series to degree 12 is within 2e-14.
    Each squaring doubles the relative error, so the result is within about 4e-12 relative
    (measured over [-128, 0]: ``tests/test_erf.py``), far below a float32 ulp (6e-8)."""
    u = max(a, EXP_MIN) * (1.0 / 2.0 ** EXP_SQUARINGS) + 0.5
    e = 0.0
    for c in EXP_TAYLOR[::-1]:  # Horner: (... (c11 u + c10) u + ...) u + c0
        e = e * u + c
    e *= EXP_MINUS_HALF
    for _ in range(EXP_SQUARINGS):
        e *= e
    return e if a >= EXP_MIN else 0.0


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def normal_cdf_and_density(x):
    """(Phi(x), phi(x)) in float64 for one float32 x, from one exponential: with z = |x| /
    sqrt 2, exp(-z^2) = exp(-x^2 / 2) is both phi's numerator and erfc's factor. x^2 is exact in
    float64 for a float32 x (24-bit digits, 48-bit product), so no rounding enters the exponent
    (the rounding of x^2 / 2 to float32 would cost up to 65 ulps at x = -15). The GELU's forward
    uses Phi, its backward both (phase_01_nn/activations.py)."""
    x = np.float64(x)
    e = exp_nonpositive(-0.5 * x * x)
    z = min(abs(x) * INV_SQRT_2, ERFC_Z_MAX)
    t = 1.0 / (1.0 + 0.5 * z)
    q = 0.0
    for c in ERFC_POLYNOMIAL[::-1]:
        q = q * t + c
    half_erfc = 0.5 * t * q * e
    return (half_erfc if x < 0 else 1.0 - half_erfc), e * INV_SQRT_2PI


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _normal_cdf_float32_kernel(flat_in, flat_out):
    """``error_model="numpy"`` lets a division by zero give inf instead of raising, which drops
    a branch that stops the loop vectorising."""
    for i in range(flat_in.size):
        flat_out[i] = normal_cdf_and_density(flat_in[i])[0]


# The exact GELU of phase 1, x Phi(x), and its backward, for float32 (phase 5's feed-forward):
# one pass over the array, one exponential per element. They live here, beside the function they
# call, because numba's cache notices a change to a kernel's own file only. The backward's
# gradient is one array argument, read and written: a loop given the same array as two
# arguments, one read and one written, ran at a ninth of the speed (3.5 ms against 0.4 on a
# shakespeare-char activation), the compiler's check for overlapping arrays sending it down its
# scalar path.
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _x_normal_cdf_kernel(x, out):
    for i in range(x.size):
        out[i] = x[i] * normal_cdf_and_density(x[i])[0]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _x_normal_cdf_with_backward_kernel(x, out, grad):
    for i in range(x.size):
        cdf, density = normal_cdf_and_density(x[i])
        out[i] = x[i] * cdf
        grad[i] *= cdf + x[i] * density


def x_normal_cdf_float32(x: np.ndarray) -> np.ndarray:
    """x Phi(x) for a float32 array (the exact GELU), within 1 float32 ulp of the float64
    product: Phi is not rounded to float32 before the multiplication."""
    return _apply(_x_normal_cdf_kernel, _check_float32(x))


def x_normal_cdf_with_backward_float32(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The GELU's output and gradient at once, for a backward that needs the forward's output
    again (the feed-forward's, which keeps only x): returns x Phi(x) and multiplies ``grad``
    (float32, C-contiguous, x's shape) in place by Phi(x) + x phi(x), the derivative, from one
    exponential per element for the two."""
    x = np.ascontiguousarray(_check_float32(x))
    if grad.shape != x.shape or grad.dtype != np.float32 or not grad.flags.c_contiguous:
        raise ValueError(f"grad must be float32 and C-contiguous with x's shape {x.shape}, got "
                         f"{grad.dtype} {grad.shape}")
    out = np.empty_like(x)
    _x_normal_cdf_with_backward_kernel(x.reshape(-1), out.reshape(-1), grad.reshape(-1))
    return out


def _check_float32(x):
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"expected a float32 array, got {x.dtype}; normal_cdf takes any dtype")
    return x


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
    """Phi(x) = P(Z <= x) for Z ~ N(0, 1), accurate in both tails.

    float64 (and any non-float32 input): ``normal_cdf_reference`` in one numba loop over
    ``math.erfc``, which writes one array of x's size where the composition makes three.
    float32: the fitted erfc of the module docstring in one numba loop, within 1 float32 ulp
    of the float64 reference (``tests/test_erf.py``) and 13 times faster on one core: 0.37 ms
    against 4.8 ms for one (12, 64, 512) activation of ``shakespeare-char``."""
    x = np.asarray(x)
    if x.dtype == np.float32:
        return _apply(_normal_cdf_float32_kernel, x)
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
