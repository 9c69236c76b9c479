"""Grouped-query attention (Ainslie et al. 2023) and multi-query attention (Shazeer 2019).

H query heads share G <= H key/value heads, H / G queries to a group: the KV cache shrinks by
H / G while quality stays near multi-head. G = H is multi-head attention, G = 1 multi-query.
The op repeats each K/V head over its group and runs phase 4's batched attention; on the way back
the gradient of a shared K/V head is the sum over the query heads that read it.
Derivation: ``phase_09_modern/notes/04_grouped_query_attention.md``.
"""

from __future__ import annotations

import numpy as np

from phase_04_attention.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)


def _group_size(n_head: int, n_kv_head: int) -> int:
    if n_kv_head < 1 or n_head % n_kv_head:
        raise ValueError(f"grouped-query attention: the number of query heads ({n_head}) must "
                         f"be a multiple of the number of key/value heads ({n_kv_head})")
    return n_head // n_kv_head


def repeat_kv(x: np.ndarray, n_rep: int) -> np.ndarray:
    """x: (B, G, T, D) -> (B, G * n_rep, T, D), each K/V head repeated for its n_rep queries."""
    return x if n_rep == 1 else np.repeat(x, n_rep, axis=1)


def sum_over_groups(dx: np.ndarray, n_rep: int) -> np.ndarray:
    """(B, G * n_rep, T, D) -> (B, G, T, D): the backward of ``repeat_kv``."""
    b, h, t, d = dx.shape
    return dx if n_rep == 1 else dx.reshape(b, h // n_rep, n_rep, t, d).sum(axis=2)


def grouped_query_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, *,
                                    causal: bool = False, mask: np.ndarray | None = None):
    """q: (B, H, Tq, D), k: (B, G, Tk, D), v: (B, G, Tk, Dv) -> y: (B, H, Tq, Dv).

    y[:, h] = softmax(q[:, h] k[:, g]^T / sqrt(D)) v[:, g] with g = h // (H / G).
    """
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"grouped-query attention: q, k, v must be (B, heads, T, D), got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    n_rep = _group_size(q.shape[1], k.shape[1])
    y, attention = scaled_dot_product_attention_forward(
        q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), causal=causal, mask=mask)
    return y, (attention, n_rep)


def grouped_query_attention_backward(dy: np.ndarray, cache):
    """-> (dq, dk, dv): phase 4's backward on the repeated heads, dk and dv summed per group."""
    attention, n_rep = cache
    dq, dk, dv = scaled_dot_product_attention_backward(dy, attention)
    return dq, sum_over_groups(dk, n_rep), sum_over_groups(dv, n_rep)


def grouped_query_self_attention_forward(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray,
                                         w_v: np.ndarray, w_o: np.ndarray, *, n_head: int,
                                         n_kv_head: int, causal: bool = True):
    """x: (B, T, C), w_q: (C, H*D), w_k, w_v: (C, G*D), w_o: (H*D, C) -> y: (B, T, C).

    Head h owns columns h*D:(h+1)*D of w_q, group g columns g*D:(g+1)*D of w_k and w_v.
    """
    b, t, c = x.shape
    d = w_q.shape[1] // n_head
    _group_size(n_head, n_kv_head)
    if w_q.shape != (c, n_head * d) or w_k.shape != (c, n_kv_head * d) or \
            w_v.shape != w_k.shape or w_o.shape != (n_head * d, c):
        raise ValueError(f"grouped-query attention: for C={c}, H={n_head}, G={n_kv_head} expected "
                         f"w_q (C, H*D), w_k and w_v (C, G*D), w_o (H*D, C); got {w_q.shape}, "
                         f"{w_k.shape}, {w_v.shape}, {w_o.shape}")

    def heads(w, n):
        return (x @ w).reshape(b, t, n, d).transpose(0, 2, 1, 3)

    y_heads, attention = grouped_query_attention_forward(
        heads(w_q, n_head), heads(w_k, n_kv_head), heads(w_v, n_kv_head), causal=causal)
    merged = y_heads.transpose(0, 2, 1, 3).reshape(b, t, n_head * d)
    return merged @ w_o, (x, w_q, w_k, w_v, w_o, merged, attention)


def grouped_query_self_attention_backward(dy: np.ndarray, cache):
    """-> (dx, dw_q, dw_k, dw_v, dw_o): back through w_o, the attention, the three projections."""
    x, w_q, w_k, w_v, w_o, merged, attention = cache
    b, t, c = x.shape
    hd = merged.shape[-1]
    dw_o = merged.reshape(-1, hd).T @ dy.reshape(-1, c)
    d_merged = dy @ w_o.T
    n_head = attention[0].q.shape[1]
    d = hd // n_head
    d_heads = d_merged.reshape(b, t, n_head, d).transpose(0, 2, 1, 3)
    dq, dk, dv = grouped_query_attention_backward(d_heads, attention)

    def unheads(g):
        return g.transpose(0, 2, 1, 3).reshape(b * t, -1)

    dq2, dk2, dv2 = unheads(dq), unheads(dk), unheads(dv)
    x2 = x.reshape(-1, c)
    dx = (dq2 @ w_q.T + dk2 @ w_k.T + dv2 @ w_v.T).reshape(b, t, c)
    return dx, x2.T @ dq2, x2.T @ dk2, x2.T @ dv2, dw_o
