"""Numerically stable softmax, log-softmax and log-sum-exp.

Subtracting the maximum before exponentiating changes nothing mathematically
(softmax(x) = softmax(x - c)) and keeps every ``exp`` at most 1, so logits of 1e4 do not overflow.
Why the max trick works: ``phase_00_math/notes/04_probability_and_information.md`` (4.2-4.3).
The backwards are derived in ``phase_00_math/notes/02_calculus.md`` (2.5).
"""

import numpy as np


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``log(sum(exp(x)))`` along ``axis``, computed as ``m + log(sum(exp(x - m)))``."""
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # a row of all -inf has log(0) = -inf, which is right
        out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x - logsumexp(x)``: log-probabilities, exact even where ``softmax`` underflows to 0.

    Computed as ``(x - m) - log(sum(exp(x - m)))``, not ``x - (m + log(...))``: for a confident
    prediction log(...) is tiny, and adding it to a large m first would round it away (in
    float32, 9.1 + 6e-7 is 9.1 to within one ulp, so the loss of the right class became 0).

    The sum is 1 (the largest entry's exp(0)) plus the rest, r, and the log is taken as
    ``log1p(r)``: ``log(1 + r)`` would round r to the spacing of numbers near 1 first, an error
    of about 1e-16 that is small beside 1 but not beside a confident prediction's loss, which is
    about r itself (logits 6.1 and -7.7: a loss of 1.06e-6, off by 4e-5 relative that way; a
    gradient check failed on it).
    """
    x = np.asarray(x)
    top = np.argmax(x, axis=axis, keepdims=True)  # a nan, where there is one
    m = np.take_along_axis(x, top, axis=axis)
    finite = np.isfinite(m)
    shifted = x - np.where(finite, m, 0.0)
    others = np.exp(shifted)
    np.put_along_axis(others, top, 0.0, axis=axis)
    out = shifted - np.log1p(np.sum(others, axis=axis, keepdims=True))
    if not np.all(finite):  # a row with nan or inf: the plain formula, which propagates them
        with np.errstate(divide="ignore", invalid="ignore"):
            plain = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        out = np.where(finite, out, plain)
    return out


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_forward(x: np.ndarray, *, axis: int = -1):
    """x: (..., K) -> p: (..., K), p = softmax(x) along ``axis``."""
    p = softmax(x, axis=axis)
    return p, (p, axis)


def softmax_backward(dout: np.ndarray, cache):
    """dx = p * (dout - sum(dout * p)): the softmax Jacobian applied without building it."""
    p, axis = cache
    dx = p * (dout - np.sum(dout * p, axis=axis, keepdims=True))
    return (dx,)


def log_softmax_forward(x: np.ndarray, *, axis: int = -1):
    """x: (..., K) -> log p: (..., K)."""
    out = log_softmax(x, axis=axis)
    return out, (out, axis)


def log_softmax_backward(dout: np.ndarray, cache):
    """dx = dout - softmax(x) * sum(dout)."""
    out, axis = cache
    dx = dout - np.exp(out) * np.sum(dout, axis=axis, keepdims=True)
    return (dx,)
