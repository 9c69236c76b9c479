"""Attention for sequence to sequence: alignment scores between a decoder state (the query) and
every encoder state (the keys), and the masked softmax that turns them into a context vector.

- Bahdanau, Cho and Bengio (2014), additive: e_j = v . tanh(s W_q + h_j W_k), from the
  decoder's PREVIOUS state s_{t-1}, before it reads the context.
- Luong, Pham and Manning (2015), multiplicative, from the CURRENT state h_t:
  dot e_j = h_t . h_j;  general e_j = h_t W h_j;  concat e_j = v . tanh([h_t; h_j] W).
- ``attend``: weights = softmax(e) over the source positions a mask allows, context = weights @ h.

Every op takes queries (..., Tq, Dq) and keys (..., S, Dk) and returns scores (..., Tq, S), so one
call scores every decoder step at once (Luong, teacher forcing) or one step (Bahdanau, Tq = 1).
Derivations: ``phase_04_attention/notes/01_attention_for_seq2seq.md``.
"""

from __future__ import annotations

import numpy as np

from phase_04_attention.attention import masked_softmax


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, x.shape[-1])


def _check_query_keys(op: str, query: np.ndarray, keys: np.ndarray) -> None:
    if query.ndim < 2 or keys.ndim < 2 or query.shape[:-2] != keys.shape[:-2]:
        raise ValueError(f"{op}: query (..., Tq, Dq) and keys (..., S, Dk) must share their "
                         f"leading dimensions, got {query.shape} and {keys.shape}")


def additive_score_forward(query: np.ndarray, projected_keys: np.ndarray, w_query: np.ndarray,
                           v: np.ndarray):
    """query: (..., Tq, Dq), projected_keys: (..., S, A), w_query: (Dq, A), v: (A,) ->
    scores: (..., Tq, S), e[t, j] = v . tanh(query_t W_q + projected_keys_j).

    ``projected_keys`` is h W_k: it does not depend on the decoder step, so it is computed once
    per source with ``linear_forward`` (Bahdanau et al.'s appendix makes the same remark)."""
    _check_query_keys("additive_score_forward", query, projected_keys)
    if w_query.shape != (query.shape[-1], projected_keys.shape[-1]) or v.shape != (
            projected_keys.shape[-1],):
        raise ValueError(f"additive_score_forward: w_query must be (Dq, A) = "
                         f"({query.shape[-1]}, {projected_keys.shape[-1]}) and v (A,), got "
                         f"{w_query.shape} and {v.shape}")
    hidden = np.tanh((query @ w_query)[..., :, None, :] + projected_keys[..., None, :, :])
    return hidden @ v, (query, w_query, v, hidden)


def additive_score_backward(dscores: np.ndarray, cache):
    """-> (dquery, dprojected_keys, dw_query, dv). With da = dscores v (1 - tanh^2), a
    (..., Tq, S, A) array: the query part is da summed over S, the key part da summed over Tq."""
    query, w_query, v, hidden = cache
    dv = _rows(hidden).T @ dscores.reshape(-1)
    da = dscores[..., None] * v * (1.0 - hidden * hidden)
    dquery_projected = da.sum(axis=-2)
    dquery = dquery_projected @ w_query.T
    dw_query = _rows(query).T @ _rows(dquery_projected)
    return dquery, da.sum(axis=-3), dw_query, dv


def dot_score_forward(query: np.ndarray, keys: np.ndarray):
    """query: (..., Tq, D), keys: (..., S, D) -> scores (..., Tq, S), e[t, j] = query_t . keys_j."""
    _check_query_keys("dot_score_forward", query, keys)
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"dot_score_forward: query and keys need the same width, got "
                         f"{query.shape} and {keys.shape}")
    return query @ np.swapaxes(keys, -1, -2), (query, keys)


def dot_score_backward(dscores: np.ndarray, cache):
    """-> (dquery, dkeys) = (dscores keys, dscores^T query)."""
    query, keys = cache
    return dscores @ keys, np.swapaxes(dscores, -1, -2) @ query


def general_score_forward(query: np.ndarray, keys: np.ndarray, w: np.ndarray):
    """query: (..., Tq, Dq), keys: (..., S, Dk), w: (Dq, Dk) -> scores (..., Tq, S),
    e[t, j] = query_t W keys_j: a dot product after a learned map of the query."""
    _check_query_keys("general_score_forward", query, keys)
    if w.shape != (query.shape[-1], keys.shape[-1]):
        raise ValueError(f"general_score_forward: w must be (Dq, Dk) = "
                         f"({query.shape[-1]}, {keys.shape[-1]}), got {w.shape}")
    mapped = query @ w
    scores, dot_cache = dot_score_forward(mapped, keys)
    return scores, (query, w, dot_cache)


def general_score_backward(dscores: np.ndarray, cache):
    """-> (dquery, dkeys, dw), through the dot product and then the map W."""
    query, w, dot_cache = cache
    dmapped, dkeys = dot_score_backward(dscores, dot_cache)
    return dmapped @ w.T, dkeys, _rows(query).T @ _rows(dmapped)


def concat_score_forward(query: np.ndarray, keys: np.ndarray, w: np.ndarray, v: np.ndarray):
    """query: (..., Tq, Dq), keys: (..., S, Dk), w: (Dq + Dk, A), v: (A,) -> scores (..., Tq, S),
    e[t, j] = v . tanh([query_t; keys_j] W).

    Splitting W by rows into W_q (Dq, A) over W_k (Dk, A) gives [q; k] W = q W_q + k W_k: Luong's
    concat is Bahdanau's additive score, here fed the current state instead of the previous one.
    """
    _check_query_keys("concat_score_forward", query, keys)
    d_query = query.shape[-1]
    if w.ndim != 2 or w.shape[0] != d_query + keys.shape[-1]:
        raise ValueError(f"concat_score_forward: w must be (Dq + Dk, A) with Dq + Dk = "
                         f"{d_query + keys.shape[-1]}, got {w.shape}")
    w_query, w_key = w[:d_query], w[d_query:]
    scores, additive_cache = additive_score_forward(query, keys @ w_key, w_query, v)
    return scores, (keys, w_key, additive_cache)


def concat_score_backward(dscores: np.ndarray, cache):
    """-> (dquery, dkeys, dw, dv): the additive backward, then the key projection's."""
    keys, w_key, additive_cache = cache
    dquery, dprojected, dw_query, dv = additive_score_backward(dscores, additive_cache)
    dw = np.concatenate([dw_query, _rows(keys).T @ _rows(dprojected)], axis=0)
    return dquery, dprojected @ w_key.T, dw, dv


def attend_forward(scores: np.ndarray, values: np.ndarray, *, mask: np.ndarray | None = None):
    """scores: (..., Tq, S), values: (..., S, Dv), mask: bool broadcastable to the scores or None
    (True = may attend) -> context: (..., Tq, Dv) = softmax(scores over allowed j) @ values.

    A row with no allowed position (an all-padding source) gets zero weights and a zero context.
    """
    if values.ndim < 2 or scores.shape[:-2] != values.shape[:-2] or \
            scores.shape[-1] != values.shape[-2]:
        raise ValueError(f"attend_forward: scores (..., Tq, S) and values (..., S, Dv) must agree,"
                         f" got {scores.shape} and {values.shape}")
    masked = scores.copy()
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"attend_forward: mask must be boolean (True = may attend), "
                            f"got {mask.dtype}")
        try:
            fits = np.broadcast_shapes(mask.shape, scores.shape) == scores.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"attend_forward: mask of shape {mask.shape} does not broadcast to "
                             f"the scores' shape {scores.shape}")
        masked = np.where(mask, masked, masked.dtype.type(-np.inf))
    weights = masked_softmax(masked)
    return weights @ values, (weights, values)


def attend_backward(dcontext: np.ndarray, cache):
    """-> (dscores, dvalues). dweights = dcontext values^T, dvalues = weights^T dcontext, and the
    softmax backward dscores = weights * (dweights - rowsum(dweights * weights))."""
    weights, values = cache
    dweights = dcontext @ np.swapaxes(values, -1, -2)
    dscores = weights * (dweights - np.sum(dweights * weights, axis=-1, keepdims=True))
    return dscores, np.swapaxes(weights, -1, -2) @ dcontext


def attend_weights(cache) -> np.ndarray:
    """The (..., Tq, S) attention weights of an ``attend_forward`` call."""
    return cache[0]
