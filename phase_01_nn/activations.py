"""Elementwise nonlinearities: sigmoid, tanh, ReLU and GELU, each a forward/backward pair.

Each backward multiplies the upstream gradient by the derivative at the input, written in terms
of what the forward already computed where that is cheaper (sigmoid: s (1 - s); tanh: 1 - t^2).
Derivations: ``phase_01_nn/notes/02_backpropagation.md``.
"""

import math

import numpy as np

from phase_00_math.erf import normal_cdf
from phase_01_nn.module import Module

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), written so that neither branch overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.result_type(x), copy=False)


def sigmoid_forward(x: np.ndarray):
    """x: any shape -> s = sigmoid(x)."""
    s = sigmoid(x)
    return s, s


def sigmoid_backward(dout, s):
    """dx = dout * s * (1 - s)."""
    return (dout * s * (1.0 - s),)


def tanh_forward(x: np.ndarray):
    """x: any shape -> t = tanh(x)."""
    t = np.tanh(x)
    return t, t


def tanh_backward(dout, t):
    """dx = dout * (1 - t^2)."""
    return (dout * (1.0 - t * t),)


def relu_forward(x: np.ndarray):
    """x: any shape -> max(x, 0)."""
    positive = x > 0
    return x * positive, positive


def relu_backward(dout, positive):
    """dx = dout where x > 0, else 0 (the subgradient 0 is taken at x = 0)."""
    return (dout * positive,)


def gelu_forward(x: np.ndarray, *, approximate: str = "none"):
    """GELU(x) = x Phi(x) (Hendrycks and Gimpel 2016).

    ``approximate="none"``: Phi(x) = erfc(-x / sqrt 2) / 2, the exact normal CDF.
    ``approximate="tanh"``: Phi(x) ~ (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3),
    as in GPT-2. It is computed as sigmoid(2u), the same number, because 1 + tanh(u) cancels to
    nothing for x << 0 while the sigmoid keeps its digits.
    """
    if approximate == "none":
        cdf = normal_cdf(x)
        return x * cdf, (x, cdf, approximate)
    if approximate == "tanh":
        # x * x * x, not x**3: NumPy's power has no fast float32 cube (300 times slower)
        s = sigmoid(2.0 * SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * (x * x * x)))
        return x * s, (x, s, approximate)
    raise ValueError(f"unknown GELU approximation {approximate!r}; choose 'none' or 'tanh'")


def gelu_backward(dout, cache):
    """Exact: d/dx [x Phi(x)] = Phi(x) + x phi(x) with phi the normal density.
    Tanh form, with s = sigmoid(2u): s + x * 2 s (1 - s) * sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    x, cdf_or_s, approximate = cache
    if approximate == "none":  # in place in one array: no (..., H) temporaries besides dx
        dx = x * x
        dx *= -0.5
        np.exp(dx, out=dx)
        dx *= x
        dx *= 1.0 / math.sqrt(2.0 * math.pi)  # now x phi(x)
        dx += cdf_or_s
        dx *= dout
        return (dx,)
    s = cdf_or_s
    du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * x * x)
    return (dout * (s + x * 2.0 * s * (1.0 - s) * du_dx),)


class _Elementwise(Module):
    """A parameter-free module around one activation pair."""

    forward_fn = None
    backward_fn = None

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def forward(self, x):
        out, self._cache = type(self).forward_fn(x)
        return out

    def backward(self, dout):
        return type(self).backward_fn(dout, self._cache)[0]


class Sigmoid(_Elementwise):
    forward_fn, backward_fn = sigmoid_forward, sigmoid_backward


class Tanh(_Elementwise):
    forward_fn, backward_fn = tanh_forward, tanh_backward


class ReLU(_Elementwise):
    forward_fn, backward_fn = relu_forward, relu_backward


class GELU(Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        gelu_forward(np.zeros(1), approximate=approximate)  # rejects an unknown name now
        self.approximate = approximate
        self._cache = None

    def forward(self, x):
        out, self._cache = gelu_forward(x, approximate=self.approximate)
        return out

    def backward(self, dout):
        return gelu_backward(dout, self._cache)[0]
