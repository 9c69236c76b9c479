"""FlashAttention's algorithm (Dao, Fu, Ermon, Rudra and Re 2022) in NumPy.

Naive attention builds the (Tq, Tk) matrix of scores and keeps the probabilities for the
backward: O(T^2) memory. FlashAttention walks over tiles of queries and keys and never holds more
than one (block_q, block_k) tile of scores. Across the key tiles of a query row it keeps the
running maximum m, the running sum l of exp(s - m) and the running output, rescaling the old
ones whenever m grows (the "online softmax"); at the end it saves only the output and the
log-sum-exp L = m + log l of each row. The backward recomputes each tile of probabilities as
P = exp(S - L) from the saved L, so it too needs O(T) extra memory.

The result equals naive attention up to rounding, not bitwise: the sums over keys are taken in
another order (tile by tile, rescaled), and floating-point addition is not associative.

Two implementations of the tile loops sit side by side: ``flash_forward_tiles`` /
``flash_backward_tiles`` (NumPy, a tile at a time, vectorised over the batch) and their numba
twins (``@njit``, a row at a time, explicit loops). A test checks they agree.
Derivation: ``phase_09_modern/notes/07_flash_attention.md``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

KERNELS = ("numpy", "numba")


def _tile_mask(i0: int, i1: int, j0: int, j1: int, offset: int) -> np.ndarray | None:
    """The causal mask of one tile (True = may attend: j <= i + offset), or None when the
    whole tile is allowed."""
    if j1 - 1 <= i0 + offset:
        return None
    rows = np.arange(i0, i1)[:, None]
    cols = np.arange(j0, j1)[None, :]
    return cols <= rows + offset


def _key_end(i1: int, t_k: int, causal: bool, offset: int) -> int:
    """One past the last key any of the queries i < i1 may see."""
    return min(t_k, i1 + offset) if causal else t_k


def flash_forward_tiles(q, k, v, scale, causal, block_q, block_k):
    """q: (N, Tq, D), k: (N, Tk, D), v: (N, Tk, Dv) -> (o: (N, Tq, Dv), lse: (N, Tq)).

    For each key tile: m' = max(m, rowmax S); l = e^(m - m') l + rowsum e^(S - m');
    acc = e^(m - m') acc + e^(S - m') V. At the end o = acc / l and lse = m + log l.
    """
    n, t_q, _ = q.shape
    t_k, dv = k.shape[1], v.shape[2]
    offset = t_k - t_q
    dtype = q.dtype
    o = np.empty((n, t_q, dv), dtype=dtype)
    lse = np.empty((n, t_q), dtype=dtype)
    for i0 in range(0, t_q, block_q):
        i1 = min(i0 + block_q, t_q)
        q_i = q[:, i0:i1]
        m = np.full((n, i1 - i0), -np.inf, dtype=dtype)
        l = np.zeros((n, i1 - i0), dtype=dtype)
        acc = np.zeros((n, i1 - i0, dv), dtype=dtype)
        for j0 in range(0, _key_end(i1, t_k, causal, offset), block_k):
            j1 = min(j0 + block_k, t_k)
            s = q_i @ np.swapaxes(k[:, j0:j1], 1, 2)
            s *= dtype.type(scale)
            mask = _tile_mask(i0, i1, j0, j1, offset) if causal else None
            if mask is not None:
                s = np.where(mask, s, dtype.type(-np.inf))
            m_new = np.maximum(m, s.max(axis=-1))
            alpha = np.exp(m - m_new)
            p = np.exp(s - m_new[..., None])
            l = alpha * l + p.sum(axis=-1)
            acc = alpha[..., None] * acc + p @ v[:, j0:j1]
            m = m_new
        o[:, i0:i1] = acc / l[..., None]
        lse[:, i0:i1] = m + np.log(l)
    return o, lse


def flash_backward_tiles(q, k, v, o, lse, do, scale, causal, block_q, block_k):
    """-> (dq, dk, dv), each tile's P = exp(S - lse) recomputed, never stored whole.

    delta = rowsum(dO * O); per tile: dV += P^T dO; dS = P * (dO V^T - delta);
    dQ += dS K * scale; dK += dS^T Q * scale.
    """
    n, t_q, _ = q.shape
    t_k = k.shape[1]
    offset = t_k - t_q
    dtype = q.dtype
    delta = np.sum(do * o, axis=-1)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for i0 in range(0, t_q, block_q):
        i1 = min(i0 + block_q, t_q)
        q_i, do_i = q[:, i0:i1], do[:, i0:i1]
        lse_i, delta_i = lse[:, i0:i1, None], delta[:, i0:i1, None]
        for j0 in range(0, _key_end(i1, t_k, causal, offset), block_k):
            j1 = min(j0 + block_k, t_k)
            k_j, v_j = k[:, j0:j1], v[:, j0:j1]
            s = q_i @ np.swapaxes(k_j, 1, 2)
            s *= dtype.type(scale)
            mask = _tile_mask(i0, i1, j0, j1, offset) if causal else None
            if mask is not None:
                s = np.where(mask, s, dtype.type(-np.inf))
            p = np.exp(s - lse_i)
            dv[:, j0:j1] += np.swapaxes(p, 1, 2) @ do_i
            ds = p * (do_i @ np.swapaxes(v_j, 1, 2) - delta_i)
            ds *= dtype.type(scale)
            dq[:, i0:i1] += ds @ k_j
            dk[:, j0:j1] += np.swapaxes(ds, 1, 2) @ q_i
    return dq, dk, dv


@njit(cache=True)
def flash_forward_tiles_numba(q, k, v, scale, causal, block_q, block_k, o, lse):
    """The numba twin of ``flash_forward_tiles``: same tiles, the same online softmax, written
    out row by row. Fills ``o`` (N, Tq, Dv) and ``lse`` (N, Tq) in place."""
    n, t_q, d = q.shape
    t_k, d_v = k.shape[1], v.shape[2]
    offset = t_k - t_q
    s = np.empty(block_k, dtype=np.float64)
    for b in range(n):
        for i0 in range(0, t_q, block_q):
            i1 = min(i0 + block_q, t_q)
            rows = i1 - i0
            m = np.full(rows, -np.inf)
            l = np.zeros(rows)
            acc = np.zeros((rows, d_v))
            key_end = min(t_k, i1 + offset) if causal else t_k
            for j0 in range(0, key_end, block_k):
                j1 = min(j0 + block_k, t_k)
                for r in range(rows):
                    i = i0 + r
                    row_max = -np.inf
                    for c in range(j1 - j0):
                        j = j0 + c
                        if causal and j > i + offset:
                            s[c] = -np.inf
                            continue
                        dot = 0.0
                        for e in range(d):
                            dot += q[b, i, e] * k[b, j, e]
                        s[c] = dot * scale
                        row_max = max(row_max, s[c])
                    m_new = max(m[r], row_max)
                    alpha = math.exp(m[r] - m_new)
                    l[r] *= alpha
                    for e in range(d_v):
                        acc[r, e] *= alpha
                    for c in range(j1 - j0):
                        p = math.exp(s[c] - m_new)
                        l[r] += p
                        for e in range(d_v):
                            acc[r, e] += p * v[b, j0 + c, e]
                    m[r] = m_new
            for r in range(rows):
                for e in range(d_v):
                    o[b, i0 + r, e] = acc[r, e] / l[r]
                lse[b, i0 + r] = m[r] + math.log(l[r])


@njit(cache=True)
def flash_backward_tiles_numba(q, k, v, o, lse, do, scale, causal, block_q, block_k,
                               dq, dk, dv):
    """The numba twin of ``flash_backward_tiles``; accumulates into zeroed dq, dk, dv."""
    n, t_q, d = q.shape
    t_k, d_v = k.shape[1], v.shape[2]
    offset = t_k - t_q
    for b in range(n):
        for i0 in range(0, t_q, block_q):
            i1 = min(i0 + block_q, t_q)
            key_end = min(t_k, i1 + offset) if causal else t_k
            for j0 in range(0, key_end, block_k):
                j1 = min(j0 + block_k, t_k)
                for i in range(i0, i1):
                    delta = 0.0
                    for e in range(d_v):
                        delta += do[b, i, e] * o[b, i, e]
                    for j in range(j0, j1):
                        if causal and j > i + offset:
                            continue
                        dot = 0.0
                        for e in range(d):
                            dot += q[b, i, e] * k[b, j, e]
                        p = math.exp(dot * scale - lse[b, i])
                        dp = 0.0
                        for e in range(d_v):
                            dv[b, j, e] += p * do[b, i, e]
                            dp += do[b, i, e] * v[b, j, e]
                        ds = p * (dp - delta) * scale
                        for e in range(d):
                            dq[b, i, e] += ds * k[b, j, e]
                            dk[b, j, e] += ds * q[b, i, e]


def _check_flash_args(q, k, v, causal, block_q, block_k, kernel):
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[:-2] != k.shape[:-2] \
            or k.shape[:-2] != v.shape[:-2] or q.shape[-1] != k.shape[-1] \
            or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"flash_attention: expected q (..., Tq, D), k (..., Tk, D), "
                         f"v (..., Tk, Dv), got {q.shape}, {k.shape}, {v.shape}")
    if causal and k.shape[-2] < q.shape[-2]:
        raise ValueError(f"flash_attention: causal attention needs Tk >= Tq (the queries are "
                         f"the last Tq positions), got Tq={q.shape[-2]}, Tk={k.shape[-2]}")
    if block_q < 1 or block_k < 1:
        raise ValueError(f"flash_attention: block sizes must be >= 1, got {block_q}, {block_k}")
    if kernel not in KERNELS:
        raise ValueError(f"flash_attention: unknown kernel {kernel!r}; choose one of {KERNELS}")


def flash_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, *,
                            causal: bool = False, scale: float | None = None,
                            block_q: int = 64, block_k: int = 64, kernel: str = "numpy"):
    """q: (..., Tq, D), k: (..., Tk, D), v: (..., Tk, Dv) -> y: (..., Tq, Dv).

    y = softmax(q k^T * scale) v, computed tile by tile with the online softmax; the cache holds
    q, k, v, y and the (..., Tq) log-sum-exp, no (Tq, Tk) matrix.
    """
    _check_flash_args(q, k, v, causal, block_q, block_k, kernel)
    lead, t_q, t_k = q.shape[:-2], q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    q3, k3, v3 = (np.ascontiguousarray(a.reshape(-1, *a.shape[-2:])) for a in (q, k, v))
    if kernel == "numpy":
        o, lse = flash_forward_tiles(q3, k3, v3, scale, causal, block_q, block_k)
    else:
        o = np.empty((q3.shape[0], t_q, v3.shape[-1]), dtype=q.dtype)
        lse = np.empty((q3.shape[0], t_q), dtype=q.dtype)
        flash_forward_tiles_numba(q3, k3, v3, scale, causal, block_q, block_k, o, lse)
    y = o.reshape(*lead, t_q, v.shape[-1])
    return y, (q3, k3, v3, o, lse, scale, causal, block_q, block_k, kernel, lead, t_k)


def flash_attention_backward(dy: np.ndarray, cache):
    """-> (dq, dk, dv), recomputing each tile's probabilities from the saved log-sum-exp."""
    q3, k3, v3, o, lse, scale, causal, block_q, block_k, kernel, lead, t_k = cache
    do = np.ascontiguousarray(dy.reshape(o.shape))
    if kernel == "numpy":
        dq, dk, dv = flash_backward_tiles(q3, k3, v3, o, lse, do, scale, causal, block_q,
                                          block_k)
    else:
        dq, dk, dv = np.zeros_like(q3), np.zeros_like(k3), np.zeros_like(v3)
        flash_backward_tiles_numba(q3, k3, v3, o, lse, do, scale, causal, block_q, block_k,
                                   dq, dk, dv)
    return (dq.reshape(*lead, *q3.shape[1:]), dk.reshape(*lead, t_k, k3.shape[-1]),
            dv.reshape(*lead, t_k, v3.shape[-1]))
