"""Cross-attention, the encoder-decoder's bridge (Vaswani et al. 2017, section 3.2.3): the
decoder's positions ask the queries, the encoder's output (the "memory") supplies keys and values.

    q = x W_q + b_q            x: (B, Tq, C), the decoder stream
    [k | v] = m W_kv + b_kv    m: (B, Tk, C), the encoder's output
    y = concat_h(softmax(q_h k_h^T / sqrt(D)) v_h) W_o + b_o

The heads are a batch dimension of one ``scaled_dot_product_attention_forward`` call (phase 4);
no loop over heads. Unlike self-attention, the memory's gradient leaves the op separately: it
flows back into the encoder, from every decoder layer.
Notes: ``phase_05_transformer_numpy/notes/04_encoder_decoder.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.module import Module
from phase_04_attention.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)


def _split(a: np.ndarray, n_head: int) -> np.ndarray:
    """(B, T, C) -> (B, H, T, C / H)."""
    b, t, c = a.shape
    return a.reshape(b, t, n_head, c // n_head).transpose(0, 2, 1, 3)


def _merge(a: np.ndarray) -> np.ndarray:
    """(B, H, T, D) -> (B, T, H D)."""
    b, h, t, d = a.shape
    return a.transpose(0, 2, 1, 3).reshape(b, t, h * d)


def cross_attention_forward(x: np.ndarray, memory: np.ndarray, w_q: np.ndarray,
                            b_q: np.ndarray | None, w_kv: np.ndarray, b_kv: np.ndarray | None,
                            w_o: np.ndarray, b_o: np.ndarray | None, *, n_head: int,
                            mask: np.ndarray | None = None):
    """x: (B, Tq, C), memory: (B, Tk, C), w_q: (C, C), b_q: (C,), w_kv: (C, 2C) columns [k | v],
    b_kv: (2C,), w_o: (C, C), b_o: (C,) -> y: (B, Tq, C). ``mask``: bool, broadcastable to
    (B, H, Tq, Tk), True where a query may attend (a source padding mask is (B, 1, 1, Tk))."""
    if x.ndim != 3 or memory.ndim != 3 or memory.shape[0] != x.shape[0] \
            or memory.shape[2] != x.shape[2]:
        raise ValueError(f"cross_attention: x (B, Tq, C) and memory (B, Tk, C) must share B "
                         f"and C, got {x.shape} and {memory.shape}")
    c = x.shape[-1]
    if n_head < 1 or c % n_head:
        raise ValueError(f"cross_attention: width C={c} must be divisible by n_head={n_head}")
    if w_q.shape != (c, c) or w_kv.shape != (c, 2 * c) or w_o.shape != (c, c):
        raise ValueError(f"cross_attention: expected w_q {(c, c)}, w_kv {(c, 2 * c)}, w_o "
                         f"{(c, c)}, got {w_q.shape}, {w_kv.shape}, {w_o.shape}")
    q = x @ w_q
    if b_q is not None:
        q += b_q
    kv = memory @ w_kv
    if b_kv is not None:
        kv += b_kv
    heads, attention = scaled_dot_product_attention_forward(
        _split(q, n_head), _split(kv[..., :c], n_head), _split(kv[..., c:], n_head), mask=mask)
    merged = _merge(heads)
    y = merged @ w_o
    if b_o is not None:
        y += b_o
    flags = (b_q is not None, b_kv is not None, b_o is not None)
    return y, (x, memory, w_q, w_kv, w_o, merged, attention, flags)


def cross_attention_backward(dy: np.ndarray, cache):
    """-> (dx, dmemory, dw_q, db_q, dw_kv, db_kv, dw_o, db_o): back through w_o, the batched
    attention, then the two input projections."""
    x, memory, w_q, w_kv, w_o, merged, attention, (has_b_q, has_b_kv, has_b_o) = cache
    c = x.shape[-1]
    n_head = attention.q.shape[1]
    dy2 = dy.reshape(-1, c)
    dw_o = merged.reshape(-1, c).T @ dy2
    db_o = dy2.sum(axis=0) if has_b_o else None
    dq, dk, dv = scaled_dot_product_attention_backward(_split(dy @ w_o.T, n_head), attention)
    dq, dkv = _merge(dq), np.concatenate([_merge(dk), _merge(dv)], axis=-1)
    dq2, dkv2 = dq.reshape(-1, c), dkv.reshape(-1, 2 * c)
    dw_q = x.reshape(-1, c).T @ dq2
    dw_kv = memory.reshape(-1, c).T @ dkv2
    db_q = dq2.sum(axis=0) if has_b_q else None
    db_kv = dkv2.sum(axis=0) if has_b_kv else None
    return dq @ w_q.T, dkv @ w_kv.T, dw_q, db_q, dw_kv, db_kv, dw_o, db_o


class CrossAttention(Module):
    """Params ``w_q`` (C, C), ``w_kv`` (C, 2C), ``w_o`` (C, C) and, with ``bias``, ``b_q``,
    ``b_kv``, ``b_o``. ``backward`` returns (dx, dmemory)."""

    NAMES = ("w_q", "b_q", "w_kv", "b_kv", "w_o", "b_o")

    def __init__(self, dim: int, n_head: int, *, rng: np.random.Generator, bias: bool = True,
                 std: float = 0.02, proj_std: float = 0.02, dtype=np.float32) -> None:
        super().__init__()
        if n_head < 1 or dim % n_head:
            raise ValueError(f"the width {dim} is not divisible by the {n_head} heads")
        self.add_param("w_q", (std * rng.standard_normal((dim, dim))).astype(dtype))
        self.add_param("w_kv", (std * rng.standard_normal((dim, 2 * dim))).astype(dtype))
        self.add_param("w_o", (proj_std * rng.standard_normal((dim, dim))).astype(dtype))
        if bias:
            for name, size in (("b_q", dim), ("b_kv", 2 * dim), ("b_o", dim)):
                self.add_param(name, np.zeros(size, dtype=dtype))
        self.n_head = n_head
        self._cache = None

    def forward(self, x, memory, mask=None):
        p = self.params
        y, self._cache = cross_attention_forward(
            x, memory, *(p.get(name) for name in self.NAMES), n_head=self.n_head, mask=mask)
        return y

    def backward(self, dy):
        dx, dmemory, *grads = cross_attention_backward(dy, self._cache)
        for name, grad in zip(self.NAMES, grads, strict=True):
            if grad is not None:
                self.grads[name] += grad
        return dx, dmemory
