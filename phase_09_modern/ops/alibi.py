"""ALiBi, attention with linear biases (Press, Smith and Lewis 2021, "Train Short, Test Long").

No position embedding at all: each head adds -m_h * (i - j) to the score of query i and key j,
a penalty growing linearly with the distance, with one fixed slope m_h per head. The slopes form a
geometric sequence, so the heads range from sharply local to nearly global, and a model trained
on short sequences extrapolates to longer ones.
Derivation: ``phase_09_modern/notes/06_alibi.md``.
"""

from __future__ import annotations

import math

import numpy as np

from phase_04_attention.attention import (
    AttentionCache,
    causal_mask,
    masked_softmax,
    scaled_dot_product_attention_backward,
)


def _geometric_slopes(n: int) -> list[float]:
    start = 2.0 ** (-8.0 / n)
    return [start ** (i + 1) for i in range(n)]


def alibi_slopes(n_head: int) -> np.ndarray:
    """(H,) slopes. For H a power of two: 2^(-8/H), 2^(-16/H), ..., 2^(-8). Otherwise (the
    paper's rule, as in its code): the slopes of the closest smaller power of two, n, followed by
    every other slope of 2n, as many as are missing."""
    if n_head < 1:
        raise ValueError(f"alibi: the number of heads must be >= 1, got {n_head}")
    closest = 2 ** int(math.floor(math.log2(n_head)))
    slopes = _geometric_slopes(closest)
    if closest < n_head:
        slopes += _geometric_slopes(2 * closest)[0::2][: n_head - closest]
    return np.array(slopes)


def alibi_bias(n_head: int, t_q: int, t_k: int) -> np.ndarray:
    """(H, Tq, Tk) biases -m_h |i' - j|, i' = i + Tk - Tq the query's position. Under the
    causal mask j <= i', so this is the paper's -m_h (i' - j)."""
    position = np.arange(t_q)[:, None] + (t_k - t_q)
    distance = np.abs(position - np.arange(t_k)[None, :])
    return -alibi_slopes(n_head)[:, None, None] * distance


def alibi_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, *,
                            causal: bool = True):
    """q: (B, H, Tq, D), k: (B, H, Tk, D), v: (B, H, Tk, Dv) -> y: (B, H, Tq, Dv).

    y = softmax(q k^T / sqrt(D) + bias) v with ALiBi's per-head linear bias.
    """
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"alibi attention: q, k, v must be (B, H, T, D), got {q.shape}, "
                         f"{k.shape}, {v.shape}")
    h, t_q, t_k = q.shape[1], q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = q @ np.swapaxes(k, -1, -2)
    scores *= q.dtype.type(scale)
    scores += alibi_bias(h, t_q, t_k).astype(q.dtype)
    if causal:
        scores = np.where(causal_mask(t_q, t_k), scores, q.dtype.type(-np.inf))
    weights = masked_softmax(scores)
    return weights @ v, AttentionCache(q, k, v, weights, scale)


def alibi_attention_backward(dy: np.ndarray, cache):
    """-> (dq, dk, dv). The bias is a constant, so the gradient is plain attention's."""
    return scaled_dot_product_attention_backward(dy, cache)
