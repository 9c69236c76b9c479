"""Mixture of experts: top-k routing (Shazeer et al. 2017) and the load-balancing loss of the
Switch Transformer (Fedus, Zoph and Shazeer 2021).

A router (one linear map, ``w_gate``) scores E experts for each token; the token goes to its k
best, and the output is their outputs weighted by the router's softmax renormalised over the k
chosen ones (Mixtral's rule). Parameters grow with E while the compute per token grows with k
only. The experts here are SwiGLU feed-forward layers, as in Mixtral (Jiang et al. 2024).

The choice of experts is a discrete decision; its gradient is taken as zero (the indices are
constants), and the router learns through the weights of the chosen experts. Left alone it
collapses onto a few experts; the balancing loss E * sum_e f_e P_e (f_e the share of
assignments expert e received, P_e its mean router probability) is 1 when both are uniform.
Derivation: ``phase_09_modern/notes/08_mixture_of_experts.md``.
"""

from __future__ import annotations

import numpy as np

from phase_00_math.softmax import softmax, softmax_backward
from phase_09_modern.ops.swiglu import swiglu_backward, swiglu_forward


def top_k_routing(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """logits: (N, E) -> (indices: (N, k) int, weights: (N, k)), best expert first.

    weights = softmax(logits)[indices] renormalised to sum to 1, which is the softmax of the k
    chosen logits alone.
    """
    n_expert = logits.shape[-1]
    if not 1 <= k <= n_expert:
        raise ValueError(f"moe: k must be between 1 and the number of experts {n_expert}, "
                         f"got {k}")
    indices = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    return indices, softmax(np.take_along_axis(logits, indices, axis=-1))


def _check_moe_shapes(x, w_gate, w1, w3, w2):
    c = x.shape[-1]
    e = w_gate.shape[1] if w_gate.ndim == 2 else -1
    if w_gate.shape != (c, e) or w1.ndim != 3 or w1.shape[:2] != (e, c) or \
            w3.shape != w1.shape or w2.shape != (e, w1.shape[2], c):
        raise ValueError(f"moe: for x (..., C={c}) expected w_gate (C, E), w1 and w3 (E, C, F), "
                         f"w2 (E, F, C); got {w_gate.shape}, {w1.shape}, {w3.shape}, {w2.shape}")


def moe_forward(x: np.ndarray, w_gate: np.ndarray, w1: np.ndarray, w3: np.ndarray,
                w2: np.ndarray, *, k: int):
    """x: (..., C), w_gate: (C, E), w1, w3: (E, C, F), w2: (E, F, C) -> y: (..., C).

    y_n = sum over the k chosen experts e of g_ne * swiglu_e(x_n), g_n = softmax of the chosen
    logits. Each expert runs once, on the tokens routed to it (loop dispatch).
    """
    _check_moe_shapes(x, w_gate, w1, w3, w2)
    x2 = x.reshape(-1, x.shape[-1])
    logits = x2 @ w_gate
    indices, gates = top_k_routing(logits, k)
    y = np.zeros_like(x2)
    experts = []
    for e in range(w_gate.shape[1]):
        rows, slots = np.nonzero(indices == e)  # a token picks an expert at most once
        if rows.size == 0:
            experts.append(None)
            continue
        out, swiglu_cache = swiglu_forward(x2[rows], w1[e], w3[e], w2[e])
        y[rows] += gates[rows, slots, None] * out
        experts.append((rows, slots, out, swiglu_cache))
    return y.reshape(x.shape), (x2, x.shape, w_gate, w1.shape, w2.shape, indices, gates, experts)


def moe_backward(dy: np.ndarray, cache):
    """-> (dx, dw_gate, dw1, dw3, dw2). Per expert: swiglu's backward of g dy on its tokens and
    dg = dy . out; then the softmax over the chosen logits back to the router."""
    x2, x_shape, w_gate, w1_shape, w2_shape, indices, gates, experts = cache
    dy2 = dy.reshape(x2.shape)
    dx = np.zeros_like(x2)
    dw1, dw3 = np.zeros(w1_shape, dtype=x2.dtype), np.zeros(w1_shape, dtype=x2.dtype)
    dw2 = np.zeros(w2_shape, dtype=x2.dtype)
    d_gates = np.zeros_like(gates)
    for e, routed in enumerate(experts):
        if routed is None:
            continue
        rows, slots, out, swiglu_cache = routed
        d_gates[rows, slots] = np.sum(dy2[rows] * out, axis=-1)
        dx_e, dw1[e], dw3[e], dw2[e] = swiglu_backward(gates[rows, slots, None] * dy2[rows],
                                                       swiglu_cache)
        dx[rows] += dx_e
    (d_chosen,) = softmax_backward(d_gates, (gates, -1))
    d_logits = np.zeros((x2.shape[0], w_gate.shape[1]), dtype=x2.dtype)
    np.put_along_axis(d_logits, indices, d_chosen, axis=-1)
    dx += d_logits @ w_gate.T
    return dx.reshape(x_shape), x2.T @ d_logits, dw1, dw3, dw2


def moe_dense_reference(x: np.ndarray, w_gate: np.ndarray, w1: np.ndarray, w3: np.ndarray,
                        w2: np.ndarray, *, k: int) -> np.ndarray:
    """The same layer computed densely: every expert on every token, then masked by an (N, E)
    combine matrix that is zero off the chosen experts. E / k times the work; a reference."""
    x2 = x.reshape(-1, x.shape[-1])
    indices, gates = top_k_routing(x2 @ w_gate, k)
    combine = np.zeros((x2.shape[0], w_gate.shape[1]), dtype=x2.dtype)
    np.put_along_axis(combine, indices, gates, axis=-1)
    outputs = np.stack([swiglu_forward(x2, w1[e], w3[e], w2[e])[0]
                        for e in range(w_gate.shape[1])], axis=1)  # (N, E, C)
    return np.einsum("ne,nec->nc", combine, outputs).reshape(x.shape)


def load_balancing_loss_forward(logits: np.ndarray, *, expert_index: np.ndarray):
    """logits: (N, E) router logits, expert_index: (N, k) chosen experts -> loss: ().

    loss = E * sum_e f_e P_e, f_e = share of the N k assignments that went to e (a constant),
    P_e = mean over tokens of softmax(logits)_e. It is 1 when f or P is uniform.
    """
    if logits.ndim != 2 or expert_index.ndim != 2 or expert_index.shape[0] != logits.shape[0]:
        raise ValueError(f"load balancing loss: expected logits (N, E) and expert_index (N, k), "
                         f"got {logits.shape} and {expert_index.shape}")
    n, n_expert = logits.shape
    fraction = (np.bincount(expert_index.ravel(), minlength=n_expert) / expert_index.size
                ).astype(logits.dtype)
    probs = softmax(logits)
    loss = n_expert * np.dot(fraction, probs.mean(axis=0))
    return np.asarray(loss, dtype=logits.dtype), (probs, fraction)


def load_balancing_loss_backward(dloss, cache):
    """d probs_ne = dloss * E f_e / N, then back through the softmax."""
    probs, fraction = cache
    n, n_expert = probs.shape
    d_probs = np.broadcast_to(dloss * n_expert * fraction / n, probs.shape).astype(probs.dtype)
    return softmax_backward(d_probs, (probs, -1))
