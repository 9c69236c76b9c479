"""Sliding-window attention (Beltagy et al. 2020 for the idea; Jiang et al. 2023, Mistral 7B, for
its use with a rolling KV cache).

Each query sees only the last W positions, itself included: the cost and the KV cache stop
growing with the context, while stacked layers still pass information further back (layer L can
reach about L * W tokens). At generation time a cache of W slots is enough: position i writes
slot i mod W, overwriting the key that just fell out of the window.
Derivation: ``phase_09_modern/notes/05_sliding_window.md``.
"""

from __future__ import annotations

import numpy as np

from phase_00_math.softmax import softmax
from phase_04_attention.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)


def sliding_window_mask(t_q: int, t_k: int, window: int) -> np.ndarray:
    """Bool (Tq, Tk), True where query i may see key j: i' - W < j <= i' with i' = i + Tk - Tq
    (the queries are the last Tq positions, as in phase 4's causal mask)."""
    if window < 1:
        raise ValueError(f"sliding window: the window must be >= 1, got {window}")
    position = np.arange(t_q)[:, None] + (t_k - t_q)
    j = np.arange(t_k)[None, :]
    return (j <= position) & (j > position - window)


def sliding_window_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, *,
                                     window: int):
    """q: (..., Tq, D), k: (..., Tk, D), v: (..., Tk, Dv) -> y: (..., Tq, Dv).

    y = softmax(q k^T / sqrt(D) masked to the last ``window`` keys of each query) v.
    """
    mask = sliding_window_mask(q.shape[-2], k.shape[-2], window)
    return scaled_dot_product_attention_forward(q, k, v, mask=mask)


def sliding_window_attention_backward(dy: np.ndarray, cache):
    """-> (dq, dk, dv): phase 4's backward; the mask is a constant."""
    return scaled_dot_product_attention_backward(dy, cache)


class RollingKVCache:
    """A KV cache of ``window`` slots per (batch, head): position i lives in slot i mod W.

    ``step(q, k, v)`` appends one position's key and value (B, H, D) / (B, H, Dv) and returns
    its attention output (B, H, Dv) over the cached positions. The slots are not in time order
    once the buffer wraps; attention does not care, since it is a weighted sum over a set.
    """

    def __init__(self, batch: int, n_head: int, window: int, d: int, d_v: int | None = None,
                 dtype=np.float32) -> None:
        if window < 1:
            raise ValueError(f"rolling KV cache: the window must be >= 1, got {window}")
        d_v = d if d_v is None else d_v
        self.window = window
        self.keys = np.zeros((batch, n_head, window, d), dtype=dtype)
        self.values = np.zeros((batch, n_head, window, d_v), dtype=dtype)
        self.length = 0  # positions seen so far

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        k_shape = self.keys.shape[:2] + self.keys.shape[3:]
        v_shape = self.values.shape[:2] + self.values.shape[3:]
        if k.shape != k_shape or v.shape != v_shape:
            raise ValueError(f"rolling KV cache: expected k {k_shape} and v {v_shape}, got "
                             f"{k.shape} and {v.shape}")
        slot = self.length % self.window
        self.keys[:, :, slot] = k
        self.values[:, :, slot] = v
        self.length += 1

    def attend(self, q: np.ndarray) -> np.ndarray:
        """q: (B, H, D) -> (B, H, Dv): softmax over the filled slots."""
        filled = min(self.length, self.window)
        if filled == 0:
            raise ValueError("rolling KV cache: attend before any key was appended")
        keys, values = self.keys[:, :, :filled], self.values[:, :, :filled]
        scale = q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
        scores = np.einsum("bhd,bhsd->bhs", q, keys) * scale
        return np.einsum("bhs,bhsd->bhd", softmax(scores), values)

    def step(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        self.append(k, v)
        return self.attend(q)
