"""Scaled dot-product attention, single-head and multi-head self-attention.

Attention reads a weighted average of value vectors, the weights a softmax over how well each
query matches each key: ``y = softmax(q k^T / sqrt(d)) v`` (Vaswani et al. 2017). A boolean mask
says which keys a query may see (padding, or the causal mask of a language model).
Derivations, including the backward:
``phase_04_attention/notes/02_scaled_dot_product_attention.md``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from phase_01_nn.linear import matmul_rows
from phase_01_nn.module import Module


@lru_cache(maxsize=64)
def causal_mask(t_q: int, t_k: int | None = None) -> np.ndarray:
    """Bool (Tq, Tk), True where query i may see key j: j <= i + (Tk - Tq).

    With Tq == Tk this is the lower triangle. With Tk > Tq the queries are the LAST Tq positions
    of the keys' sequence. Read-only and cached, so it costs nothing in a training loop.
    """
    t_k = t_q if t_k is None else t_k
    if t_q < 1 or t_k < 1:
        raise ValueError(f"causal_mask: lengths must be positive, got t_q={t_q}, t_k={t_k}")
    allowed = np.tri(t_q, t_k, k=t_k - t_q, dtype=bool)
    allowed.flags.writeable = False
    return allowed


@lru_cache(maxsize=64)
def _causal_bias(t_q: int, t_k: int, dtype: np.dtype) -> np.ndarray:
    """0 where allowed, -inf where not: adding it masks the scores in one pass."""
    bias = np.where(causal_mask(t_q, t_k), 0.0, -np.inf).astype(dtype)
    bias.flags.writeable = False
    return bias


class AttentionCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray | None  # P: (..., Tq, Tk), rows sum to 1 (0 for a fully masked row)
    scale: float
    # With keep_weights=False, P is None and these rebuild it in the backward:
    y: np.ndarray | None = None  # the output P v: the backward's row sums use it
    log_sum_exp: np.ndarray | None = None  # (..., Tq, 1)
    causal: bool = False
    mask: np.ndarray | None = None


def _check_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"attention: q, k, v must have the same number (>= 2) of dimensions, "
            f"got {q.shape}, {k.shape}, {v.shape}"
        )
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(
            f"attention: q, k, v must share their leading (batch, head) dimensions, "
            f"got {q.shape}, {k.shape}, {v.shape}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention: q and k must have the same last dimension, got {q.shape} and {k.shape}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"attention: k and v must have the same number of positions, got {k.shape}, {v.shape}"
        )


def masked_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in place, where -inf marks a masked score.

    A row that is masked everywhere has max -inf, and ``scores - max`` would be nan; for those
    rows the shift is 0 instead, every exp is 0, and the row of weights is all zeros.
    """
    return softmax_and_log_sum_exp(scores)[0]


def softmax_and_log_sum_exp(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``masked_softmax`` (in place), and each row's log sum exp (..., 1): the weights are then
    exp(scores - log_sum_exp), which lets a backward rebuild them from the scores alone. A fully
    masked row gets 0, so that its rebuilt weights are exp(-inf) = 0 as well."""
    m = scores.max(axis=-1, keepdims=True)
    if not np.all(np.isfinite(m)):
        m = np.where(np.isfinite(m), m, 0.0).astype(scores.dtype)
    scores -= m
    np.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    if not np.all(total > 0):
        total = np.where(total > 0, total, 1.0).astype(scores.dtype)
    scores /= total
    return scores, m + np.log(total)


def _scores(q, k, scale, causal, mask):
    """q k^T * scale, with -inf where the causal mask or ``mask`` forbids."""
    scores = (q * q.dtype.type(scale)) @ np.swapaxes(k, -1, -2)  # scaling q: (T, D), not (T, T)
    if causal:
        scores += _causal_bias(q.shape[-2], k.shape[-2], scores.dtype)
    if mask is not None:
        scores = np.where(mask, scores, scores.dtype.type(-np.inf))
    return scores


def _check_mask(mask, scores_shape) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"attention: mask must be boolean (True = may attend), got {mask.dtype}")
    try:
        np.broadcast_shapes(mask.shape, scores_shape)
    except ValueError:
        raise ValueError(
            f"attention: mask of shape {mask.shape} does not broadcast to the scores' "
            f"shape {scores_shape} (..., Tq, Tk)"
        ) from None
    return mask


def scaled_dot_product_attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    causal: bool = False,
    scale: float | None = None,
    keep_weights: bool = True,
):
    """q: (..., Tq, D), k: (..., Tk, D), v: (..., Tk, Dv) -> y: (..., Tq, Dv).

    y = P v with P = softmax(q k^T * scale), scale = 1/sqrt(D) unless given. ``mask`` is a bool
    array broadcastable to (..., Tq, Tk), True where a query may attend; ``causal`` adds the
    causal mask. A query that may attend nowhere gets zero weights and a zero output.

    ``keep_weights=False`` keeps each row's log-sum-exp instead of P, and the backward rebuilds
    P = exp(q k^T * scale - log_sum_exp) with one more matmul: (..., Tq, 1) held instead of
    (..., Tq, Tk), as FlashAttention and torch's fused CPU kernel do (Dao et al. 2022). Both
    passes then also go a few indices of the first axis at a time (sequences of a batch), so
    that only a slice of the (..., Tq, Tk) scores exists at once; the plain path keeps P.
    """
    _check_qkv(q, k, v)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
    if mask is not None:
        mask = _check_mask(mask, (*q.shape[:-1], k.shape[-2]))
    if keep_weights or q.ndim < 3:
        weights, log_sum_exp = softmax_and_log_sum_exp(_scores(q, k, scale, causal, mask))
        y = weights @ v
        if keep_weights:
            return y, AttentionCache(q, k, v, weights, scale)
        return y, AttentionCache(q, k, v, None, scale, y, log_sum_exp, causal, mask)
    dtype = np.result_type(q, k, v)
    y = np.empty((*q.shape[:-1], v.shape[-1]), dtype=dtype)
    log_sum_exp = np.empty((*q.shape[:-1], 1), dtype=np.result_type(q, k))
    blocks = _query_blocks(q.shape[-2], k.shape[-2], causal, mask)
    for i, mask_i in _slices(q, k, mask):
        for rows, keys in blocks:
            weights, log_sum_exp[i][..., rows, :] = softmax_and_log_sum_exp(
                _scores(q[i][..., rows, :], k[i][..., keys, :], scale, causal, mask_i))
            y[i][..., rows, :] = weights @ v[i][..., keys, :]
    return y, AttentionCache(q, k, v, None, scale, y, log_sum_exp, causal, mask)


SCORES_SLICE_BYTES = 2 << 20  # how much of the (..., Tq, Tk) scores may exist at once


def _slices(q, k, mask):
    """Runs of the first axis, each with its part of ``mask`` (or None): as many indices as
    keep a slice of the scores within ``SCORES_SLICE_BYTES``, so that a small batch is one
    slice (no Python loop) and a large one is cut into a few."""
    per_index = q[:1].size // q.shape[-1] * k.shape[-2] * q.dtype.itemsize
    step = max(1, SCORES_SLICE_BYTES // max(per_index, 1))
    full = None if mask is None else np.broadcast_to(mask, (*q.shape[:-1], k.shape[-2]))
    return [(slice(i, i + step), None if full is None else full[i:i + step])
            for i in range(0, q.shape[0], step)]


QUERY_BLOCK = 64  # causal attention over at least 2 such blocks of queries goes block by block


def _query_blocks(t_q: int, t_k: int, causal: bool, mask) -> list[tuple[slice, slice]]:
    """(queries, keys) pairs that cover the scores (Tq, Tk) a block of queries at a time, each
    with the keys it may see. With the causal mask, query i sees keys 0 .. i + Tk - Tq, so the
    block of queries [a, b) needs keys [0, b + Tk - Tq) only: the keys after it would be
    computed and then masked. Blocks of ``QUERY_BLOCK`` queries skip those parts of the
    matmuls, as FlashAttention skips its masked tiles (Dao et al. 2022). For phase 6's
    ``larger`` preset (T = 256, four blocks) that is 3/8 of the attention's matmul work and of
    its softmax's: one layer's attention forward and backward took 22.0 ms instead of 31 to 32 on
    one thread here, 16.5 instead of 20.3 on two (blocks of 128: 25.0 and 17.6; of 32: 22.8
    and 21.7, the smaller matmuls and the Python loop costing more than they save). Shorter
    sequences, no causal mask, or an explicit ``mask``: one block, every key."""
    offset = t_k - t_q
    if not causal or mask is not None or t_q < 2 * QUERY_BLOCK or offset < 0:
        return [(slice(0, t_q), slice(0, t_k))]
    return [(slice(start, min(start + QUERY_BLOCK, t_q)),
             slice(0, min(start + QUERY_BLOCK, t_q) + offset))
            for start in range(0, t_q, QUERY_BLOCK)]


def scaled_dot_product_attention_backward(dy: np.ndarray, cache: AttentionCache):
    """dv = P^T dy; dP = dy v^T; dS = P * (dP - rowsum(dP * P)); dq = dS k s; dk = dS^T q s.
    The scale multiplies dq and dk, (.., T, D), rather than dS, (.., Tq, Tk).

    A cache without P (``keep_weights=False``) rebuilds it a slice of the first axis at a
    time, and takes rowsum(dP * P) for query i as dy_i . y_i: it is sum_j P_ij (dy_i . v_j),
    and y_i = sum_j P_ij v_j, so a dot product over D replaces a pass over the (Tq, Tk) matrix
    (FlashAttention's D_i, Dao et al. 2022). Equal in exact arithmetic, not in rounding: where
    a query sees one key, dP - rowsum(dP * P) is exactly 0 the plain way and a rounding error
    the fast way, which is why the plain way stays the reference."""
    q, k, v, weights, scale, y, log_sum_exp, causal, mask = cache
    if weights is not None or q.ndim < 3:
        dq, dk, dv = _gradients_given_weights(dy, q, k, v, attention_weights(cache), None)
    else:
        row_dot = np.sum(dy * y, axis=-1, keepdims=True)
        dq, dk, dv = np.empty(q.shape, dy.dtype), np.empty(k.shape, dy.dtype), np.empty_like(dy)
        blocks = _query_blocks(q.shape[-2], k.shape[-2], causal, mask)
        accumulate = len(blocks) > 1  # each block adds to the keys it saw
        if accumulate:
            dk[...] = 0
            dv[...] = 0
        for i, mask_i in _slices(q, k, mask):
            for rows, keys in blocks:
                q_b, k_b = q[i][..., rows, :], k[i][..., keys, :]
                weights_b = _rebuilt_weights(q_b, k_b, scale, causal, mask_i,
                                             log_sum_exp[i][..., rows, :])
                dq_b, dk_b, dv_b = _gradients_given_weights(
                    dy[i][..., rows, :], q_b, k_b, v[i][..., keys, :], weights_b,
                    row_dot[i][..., rows, :])
                dq[i][..., rows, :] = dq_b
                if accumulate:
                    dk[i][..., keys, :] += dk_b
                    dv[i][..., keys, :] += dv_b
                else:
                    dk[i], dv[i] = dk_b, dv_b
    dq *= dq.dtype.type(scale)
    dk *= dk.dtype.type(scale)
    return dq, dk, dv


def _gradients_given_weights(dy, q, k, v, weights, row_dot):
    """(dq, dk, dv) before the scale; ``row_dot`` = rowsum(dP * P) if known, else None."""
    dv = np.swapaxes(weights, -1, -2) @ dy
    d_weights = dy @ np.swapaxes(v, -1, -2)
    if row_dot is None:
        row_dot = np.sum(d_weights * weights, axis=-1, keepdims=True)
    d_weights -= row_dot
    d_scores = d_weights
    d_scores *= weights
    return d_scores @ k, np.swapaxes(d_scores, -1, -2) @ q, dv


def _rebuilt_weights(q, k, scale, causal, mask, log_sum_exp):
    """P = exp(q k^T * scale - log_sum_exp), masked entries exp(-inf) = 0."""
    scores = _scores(q, k, scale, causal, mask)
    scores -= log_sum_exp
    return np.exp(scores, out=scores)


def attention_weights(cache: AttentionCache) -> np.ndarray:
    """The attention matrix P (..., Tq, Tk) that a forward pass used (rebuilt from the scores
    and the log-sum-exp when the forward did not keep it)."""
    if cache.weights is not None:
        return cache.weights
    return _rebuilt_weights(cache.q, cache.k, cache.scale, cache.causal, cache.mask,
                            cache.log_sum_exp)


def attention_entropy(weights: np.ndarray) -> np.ndarray:
    """weights: (B, H, Tq, Tk) -> (H,): each head's mean entropy -sum p log p, in nats.

    0 means every query looks at one key; log(Tk) means it spreads evenly over Tk keys. Fully
    masked rows (all zeros) count as entropy 0.
    """
    if weights.ndim != 4:
        raise ValueError(f"attention_entropy: expected weights (B, H, Tq, Tk), got {weights.shape}")
    p = weights.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=-1).mean(axis=(0, 2))


def self_attention_forward(
    x: np.ndarray,
    w_q: np.ndarray,
    w_k: np.ndarray,
    w_v: np.ndarray,
    *,
    causal: bool = False,
    mask: np.ndarray | None = None,
):
    """x: (B, T, C), w_q, w_k: (C, D), w_v: (C, Dv) -> y: (B, T, Dv).

    One head: the sequence attends to itself, q = x W_q, k = x W_k, v = x W_v.
    """
    if x.ndim != 3:
        raise ValueError(f"self_attention: x must be (B, T, C), got {x.shape}")
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    y, attention = scaled_dot_product_attention_forward(q, k, v, mask=mask, causal=causal)
    return y, (x, w_q, w_k, w_v, attention)


def self_attention_backward(dy: np.ndarray, cache):
    """Back through the attention, then through the three projections."""
    x, w_q, w_k, w_v, attention = cache
    dq, dk, dv = scaled_dot_product_attention_backward(dy, attention)
    x2 = x.reshape(-1, x.shape[-1])
    dx = dq @ w_q.T + dk @ w_k.T + dv @ w_v.T
    dw_q = x2.T @ dq.reshape(-1, dq.shape[-1])
    dw_k = x2.T @ dk.reshape(-1, dk.shape[-1])
    dw_v = x2.T @ dv.reshape(-1, dv.shape[-1])
    return dx, dw_q, dw_k, dw_v


def _split_heads_shapes(x: np.ndarray, w_qkv: np.ndarray, w_o: np.ndarray, n_head: int) -> int:
    if x.ndim != 3:
        raise ValueError(f"multi_head_self_attention: x must be (B, T, C), got {x.shape}")
    c = x.shape[-1]
    if n_head < 1 or c % n_head != 0:
        raise ValueError(
            f"multi_head_self_attention: width C={c} must be divisible by n_head={n_head}"
        )
    if w_qkv.shape != (c, 3 * c) or w_o.shape != (c, c):
        raise ValueError(
            f"multi_head_self_attention: expected w_qkv {(c, 3 * c)} and w_o {(c, c)} for "
            f"width {c}, got {w_qkv.shape} and {w_o.shape}"
        )
    return c // n_head


def multi_head_self_attention_forward(
    x: np.ndarray,
    w_qkv: np.ndarray,
    b_qkv: np.ndarray | None,
    w_o: np.ndarray,
    b_o: np.ndarray | None,
    *,
    n_head: int,
    causal: bool = False,
    mask: np.ndarray | None = None,
):
    """x: (B, T, C), w_qkv: (C, 3C), b_qkv: (3C,), w_o: (C, C), b_o: (C,) -> y: (B, T, C).

    One matmul makes q, k and v for every head (columns [q | k | v], head h owning columns
    h*D:(h+1)*D of each, D = C / n_head: GPT-2's ``c_attn`` layout); the heads then run as one
    batched attention over (B, H, T, D), and ``w_o`` mixes their concatenated outputs.
    """
    d = _split_heads_shapes(x, w_qkv, w_o, n_head)
    b, t, c = x.shape
    qkv = matmul_rows(x, w_qkv)
    if b_qkv is not None:
        qkv += b_qkv
    q, k, v = qkv.reshape(b, t, 3, n_head, d).transpose(2, 0, 3, 1, 4)  # each (B, H, T, D)
    heads, attention = scaled_dot_product_attention_forward(q, k, v, mask=mask, causal=causal,
                                                            keep_weights=False)
    y = matmul_rows(_merge_heads(heads), w_o)
    if b_o is not None:
        y += b_o
    # the merged heads are not kept: the backward merges the output in the attention's cache again
    return y, (x, w_qkv, w_o, attention, b_qkv is not None, b_o is not None)


def _merge_heads(heads: np.ndarray) -> np.ndarray:
    """(B, H, T, D) -> (B, T, H * D), contiguous: the heads side by side for ``w_o``."""
    b, n_head, t, d = heads.shape
    return heads.transpose(0, 2, 1, 3).reshape(b, t, n_head * d)


def multi_head_self_attention_backward(dy: np.ndarray, cache):
    """Back through w_o, the batched attention, then the fused qkv projection."""
    x, w_qkv, w_o, attention, has_b_qkv, has_b_o = cache
    b, t, c = x.shape
    n_head, d = attention.q.shape[1], attention.q.shape[3]
    dy2 = dy.reshape(-1, c)
    dw_o = _merge_heads(attention.y).reshape(-1, c).T @ dy2
    db_o = dy2.sum(axis=0) if has_b_o else None
    d_heads = matmul_rows(dy, w_o.T).reshape(b, t, n_head, d).transpose(0, 2, 1, 3)
    dq, dk, dv = scaled_dot_product_attention_backward(d_heads, attention)
    d_qkv = np.empty((b, t, 3, n_head, d), dtype=dq.dtype)  # GPT-2's [q | k | v] columns
    for i, grad in enumerate((dq, dk, dv)):
        d_qkv[:, :, i] = grad.transpose(0, 2, 1, 3)
    d_qkv = d_qkv.reshape(b * t, 3 * c)
    dx = (d_qkv @ w_qkv.T).reshape(b, t, c)
    dw_qkv = x.reshape(-1, c).T @ d_qkv
    db_qkv = d_qkv.sum(axis=0) if has_b_qkv else None
    return dx, dw_qkv, db_qkv, dw_o, db_o


def multi_head_attention_weights(cache) -> np.ndarray:
    """The (B, H, T, T) attention weights of a multi-head forward pass."""
    return attention_weights(cache[3])


class SelfAttention(Module):
    """One head of self-attention with its own q, k, v projections (no output projection)."""

    def __init__(
        self, n_embd: int, head_size: int, *, rng: np.random.Generator, causal: bool = True,
        std: float = 0.02, dtype=np.float32,
    ) -> None:
        super().__init__()
        for name in ("w_q", "w_k", "w_v"):
            self.add_param(name, (std * rng.standard_normal((n_embd, head_size))).astype(dtype))
        self.causal = causal
        self.last_weights: np.ndarray | None = None
        self._cache = None

    def forward(self, x, mask=None):
        p = self.params
        y, self._cache = self_attention_forward(
            x, p["w_q"], p["w_k"], p["w_v"], causal=self.causal, mask=mask
        )
        self.last_weights = attention_weights(self._cache[-1])
        return y

    def backward(self, dy):
        dx, dw_q, dw_k, dw_v = self_attention_backward(dy, self._cache)
        self.grads["w_q"] += dw_q
        self.grads["w_k"] += dw_k
        self.grads["w_v"] += dw_v
        return dx


class MultiHeadSelfAttention(Module):
    """Multi-head self-attention: params ``w_qkv`` (C, 3C), ``b_qkv``, ``w_o`` (C, C), ``b_o``.

    Weights start N(0, std^2) as in GPT-2; ``proj_std`` lets a deep model shrink the output
    projection (GPT-2 uses 0.02 / sqrt(2 * n_layer) for weights that write to the residual).
    """

    def __init__(
        self, n_embd: int, n_head: int, *, rng: np.random.Generator, causal: bool = True,
        bias: bool = True, std: float = 0.02, proj_std: float | None = None, dtype=np.float32,
    ) -> None:
        super().__init__()
        if n_head < 1 or n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        proj_std = std if proj_std is None else proj_std
        self.add_param("w_qkv", (std * rng.standard_normal((n_embd, 3 * n_embd))).astype(dtype))
        self.add_param("w_o", (proj_std * rng.standard_normal((n_embd, n_embd))).astype(dtype))
        if bias:
            self.add_param("b_qkv", np.zeros(3 * n_embd, dtype=dtype))
            self.add_param("b_o", np.zeros(n_embd, dtype=dtype))
        self.n_head = n_head
        self.causal = causal
        self._cache = None

    @property
    def last_weights(self) -> np.ndarray | None:
        """The (B, H, T, T) weights of the last forward, rebuilt on request (the forward keeps
        only their log-sum-exp), or None before any forward and after the backward that used
        (and released) its cache."""
        return None if self._cache is None else multi_head_attention_weights(self._cache)

    def forward(self, x, mask=None):
        p = self.params
        y, self._cache = multi_head_self_attention_forward(
            x, p["w_qkv"], p.get("b_qkv"), p["w_o"], p.get("b_o"),
            n_head=self.n_head, causal=self.causal, mask=mask,
        )
        return y

    def backward(self, dy):
        dx, dw_qkv, db_qkv, dw_o, db_o = multi_head_self_attention_backward(dy, self.take_cache())
        self.grads["w_qkv"] += dw_qkv
        self.grads["w_o"] += dw_o
        if db_qkv is not None:
            self.grads["b_qkv"] += db_qkv
            self.grads["b_o"] += db_o
        return dx
