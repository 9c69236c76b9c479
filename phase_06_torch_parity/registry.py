"""The registry: every NumPy op of phases 0 to 5, each paired with a torch reference.

``CASES`` lists one or more ``ParityCase`` per op. A test enumerates every ``*_forward`` function
in the phase packages and fails when one has no case here, so a new op cannot land unchecked.
Shapes are drawn from the generator, small, so that several seeds cover several shapes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from phase_00_math.cross_entropy import cross_entropy_backward, cross_entropy_forward
from phase_00_math.softmax import (
    log_softmax,
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_forward,
)
from phase_01_nn.activations import (
    gelu_backward,
    gelu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from phase_01_nn.batchnorm import batchnorm_backward, batchnorm_forward
from phase_01_nn.dropout import dropout_backward, dropout_forward, dropout_mask
from phase_01_nn.embedding import embedding_backward, embedding_forward
from phase_01_nn.linear import linear_backward, linear_forward
from phase_01_nn.losses import (
    mse_backward,
    mse_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from phase_03_tokenization.word2vec import sgns_backward, sgns_forward
from phase_04_attention.alignment import (
    additive_score_backward,
    additive_score_forward,
    attend_backward,
    attend_forward,
    concat_score_backward,
    concat_score_forward,
    dot_score_backward,
    dot_score_forward,
    general_score_backward,
    general_score_forward,
)
from phase_04_attention.attention import (
    multi_head_self_attention_backward,
    multi_head_self_attention_forward,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
    self_attention_backward,
    self_attention_forward,
)
from phase_04_attention.feed_forward import feed_forward_backward as phase4_feed_forward_backward
from phase_04_attention.feed_forward import feed_forward_forward as phase4_feed_forward_forward
from phase_04_attention.layer_norm import layer_norm_backward, layer_norm_forward
from phase_05_transformer_numpy.cross_attention import (
    cross_attention_backward,
    cross_attention_forward,
)
from phase_05_transformer_numpy.feed_forward import feed_forward_backward, feed_forward_forward
from phase_05_transformer_numpy.label_smoothing import (
    label_smoothing_cross_entropy_backward,
    label_smoothing_cross_entropy_forward,
)
from phase_05_transformer_numpy.positional import (
    positional_encoding_backward,
    positional_encoding_forward,
)
from phase_06_torch_parity.harness import ParityCase
from phase_06_torch_parity.recurrent import (
    RECURRENT_CASES,
    TANH_FLOAT32_REASON,
    TANH_FLOAT32_TOL,
)

# torch's GELU computes 0.5 x (1 + erf(x / sqrt 2)) and 0.5 x (1 + tanh(u)); for x << 0 the
# 1 + ... cancels, even in float64 (relative error ~ 1e-16 / (1 + tanh u): 3.4e-9 was seen at
# x ~ -6 over 3000 seeds). Ours uses erfc and sigmoid(2u) and keeps those digits, so the
# difference is torch's rounding; the tolerance leaves room for inputs down to about -8.
GELU_TOL = 1e-6
GELU_REASON = "torch's 1 + erf / 1 + tanh cancels for x << 0, ours does not"


def _shape(rng: np.random.Generator, min_dims: int = 1, max_dims: int = 3, max_side: int = 5):
    return tuple(int(s) for s in rng.integers(1, max_side + 1,
                                              size=rng.integers(min_dims, max_dims + 1)))


def _x(rng, min_dims=1, max_dims=3):
    return rng.standard_normal(_shape(rng, min_dims, max_dims))


def _away_from_zero(rng):
    x = _x(rng)
    return np.where(x >= 0, x + 0.1, x - 0.1)


def _classes(rng):
    lead = _shape(rng, 1, 2)
    k = int(rng.integers(2, 7))
    return lead, k


def _linear_inputs(rng):
    lead, d, m = _shape(rng, 1, 3), int(rng.integers(1, 6)), int(rng.integers(1, 6))
    bias = rng.standard_normal(m) if rng.random() < 0.75 else None
    return (rng.standard_normal((*lead, d)), rng.standard_normal((d, m)), bias), {}


def _linear_reference(x, w, b=None):
    return F.linear(x, w.T, b)


def _axis_inputs(rng):
    x = _x(rng)
    return (x,), {"axis": int(rng.integers(-x.ndim, x.ndim))}


def _cross_entropy_inputs(rng):
    lead, k = _classes(rng)
    log_probs = log_softmax(rng.standard_normal((*lead, k)))
    return (log_probs,), {"targets": rng.integers(0, k, size=lead)}


def _nll_reference(log_probs, *, targets):
    return F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), targets.reshape(-1))


def _logits_inputs(rng):
    lead, k = _classes(rng)
    return (3.0 * rng.standard_normal((*lead, k)),), {"targets": rng.integers(0, k, size=lead)}


def _cross_entropy_reference(logits, *, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _mse_inputs(rng):
    shape = _shape(rng)
    return (rng.standard_normal(shape), rng.standard_normal(shape)), {}


def _dropout_inputs(rng):
    x = _x(rng)
    p = float(rng.choice([0.1, 0.5]))
    return (x,), {"mask": dropout_mask(rng, x.shape, p), "p": p}


def _dropout_reference(x, *, mask, p):
    return x * mask / (1.0 - p)


def _embedding_inputs(rng):
    v, c = int(rng.integers(1, 7)), int(rng.integers(1, 5))
    return (rng.standard_normal((v, c)),), {"ids": rng.integers(0, v, size=_shape(rng, 1, 2))}


def _embedding_reference(weight, *, ids):
    return F.embedding(ids, weight)


def _batchnorm_train_inputs(rng):
    lead, d = _shape(rng, 1, 2), int(rng.integers(1, 5))
    lead = (lead[0] + 2, *lead[1:])  # at least 3 rows: with 2, x_hat is +-1 whatever x is
    return (2.0 * rng.standard_normal((*lead, d)) + 1.0, 1.0 + rng.random(d),
            rng.standard_normal(d)), {}


def _batchnorm_eval_inputs(rng):
    n, d = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    return (rng.standard_normal((n, d)), rng.standard_normal(d), rng.standard_normal(d)), {
        "training": False, "running_mean": rng.standard_normal(d),
        "running_var": 1.0 + rng.random(d)}


def _batchnorm_reference(x, gamma, beta, *, training=True, running_mean=None,
                         running_var=None, eps=1e-5):
    flat = x.reshape(-1, x.shape[-1])
    if training:  # torch's functional batch norm wants buffers it may update: give it copies
        running_mean = torch.zeros(x.shape[-1], dtype=x.dtype)
        running_var = torch.ones(x.shape[-1], dtype=x.dtype)
    out = F.batch_norm(flat, running_mean, running_var, gamma, beta, training=training, eps=eps)
    return out.reshape(x.shape)


def _sgns_inputs(rng):
    b, k, d = int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
    return (rng.standard_normal((b, d)), rng.standard_normal((b, d)),
            rng.standard_normal((b, k, d))), {}


def _sgns_reference(v_center, u_context, u_negative):
    positive = (u_context * v_center).sum(-1)
    negative = torch.einsum("bkd,bd->bk", u_negative, v_center)
    return (-F.logsigmoid(positive) - F.logsigmoid(-negative).sum(-1)).mean()


# The q and k gradients of attention are built from dS = P * (dP - rowsum(dP * P)), whose rows sum
# to zero: with two or three visible keys the terms nearly cancel and float32 keeps few digits of
# the difference. Ours and torch's both lose them (1e-4 seen for each at width 1, three keys),
# in different roundings, so the ratio of the two errors is not a fair judge there.
ATTENTION_FLOAT32_TOL = 5e-4
ATTENTION_FLOAT32_REASON = "q, k gradients are a cancelling sum (rows of dS sum to 0)"


def _size(rng, low=1, high=5) -> int:
    return int(rng.integers(low, high + 1))


def _sdpa_inputs(rng, *, fully_masked_rows=False):
    lead = _shape(rng, 1, 2, 3)
    # with one key (or one visible key per query) the weights are constant 1 and the q, k
    # gradients are exactly 0: a relative error against torch's 1e-17 would read 1
    t_q, t_k, d, dv = _size(rng), _size(rng, 2), _size(rng), _size(rng)
    q, k = rng.standard_normal((*lead, t_q, d)), rng.standard_normal((*lead, t_k, d))
    v = rng.standard_normal((*lead, t_k, dv))
    if fully_masked_rows:
        mask = rng.random((t_q, t_k)) < 0.5
        mask[rng.integers(t_q)] = False
        return (q, k, v), {"mask": mask}
    if t_q <= t_k and rng.random() < 0.5:
        return (q, k, v), {"causal": True}
    mask = rng.random((*lead, t_q, t_k)) < 0.7
    mask[..., 0] = True  # older torch gives nan for a query that sees nothing: next case
    mask[..., 0, 1] = True
    return (q, k, v), {"mask": mask}


def _torch_sdpa(q, k, v, *, mask=None, causal=False):
    if causal:  # our causal mask aligns the queries with the last keys; torch's with the first
        t_q, t_k = q.shape[-2], k.shape[-2]
        mask = torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _softmax_attention_with_empty_rows(q, k, v, *, mask):
    """Where a query may see no key, its weights (and output) are zero. Written out, because
    ``F.scaled_dot_product_attention`` gives nan there in older torch (zeros in 2.13)."""
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    any_key = mask.any(-1, keepdim=True)
    scores = torch.where(any_key, scores.masked_fill(~mask, float("-inf")), 0.0)
    return (torch.softmax(scores, -1) * any_key) @ v


def _self_attention_inputs(rng):
    b, t, c, hs = _size(rng, 1, 3), _size(rng, 2), _size(rng), _size(rng)
    return (rng.standard_normal((b, t, c)), rng.standard_normal((c, hs)),
            rng.standard_normal((c, hs)), rng.standard_normal((c, _size(rng)))), {
        "causal": bool(rng.random() < 0.5)}


def _torch_self_attention(x, w_q, w_k, w_v, *, causal):
    return F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=causal)


def _mha_inputs(rng):
    b, t, n_head, d = _size(rng, 1, 3), _size(rng, 2), _size(rng, 1, 3), _size(rng, 1, 3)
    c = n_head * d
    bias = rng.random() < 0.75
    return (rng.standard_normal((b, t, c)), rng.standard_normal((c, 3 * c)),
            rng.standard_normal(3 * c) if bias else None, rng.standard_normal((c, c)),
            rng.standard_normal(c) if bias else None), {
        "n_head": n_head, "causal": bool(rng.random() < 0.5)}


def _torch_mha(x, w_qkv, b_qkv, w_o, b_o, *, n_head, causal):
    """torch's fused kernel over heads split from one (C, 3C) projection, as in nanoGPT."""
    b, t, c = x.shape
    q, k, v = F.linear(x, w_qkv.T, b_qkv).split(c, dim=-1)
    q, k, v = (a.view(b, t, n_head, c // n_head).transpose(1, 2) for a in (q, k, v))
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return F.linear(heads.transpose(1, 2).reshape(b, t, c), w_o.T, b_o)


def _query_keys(rng, same_width=False):
    lead = _shape(rng, 1, 2, 3)
    t_q, s, d_q = _size(rng), _size(rng), _size(rng)
    d_k = d_q if same_width else _size(rng)
    return rng.standard_normal((*lead, t_q, d_q)), rng.standard_normal((*lead, s, d_k))


def _additive_inputs(rng):
    query, keys = _query_keys(rng)
    a = _size(rng)
    return (query, rng.standard_normal((*keys.shape[:-1], a)),
            rng.standard_normal((query.shape[-1], a)), rng.standard_normal(a)), {}


def _torch_additive(query, projected_keys, w_query, v):
    hidden = torch.tanh((query @ w_query).unsqueeze(-2) + projected_keys.unsqueeze(-3))
    return hidden @ v


def _general_inputs(rng):
    query, keys = _query_keys(rng)
    return (query, keys, rng.standard_normal((query.shape[-1], keys.shape[-1]))), {}


def _concat_inputs(rng):
    query, keys = _query_keys(rng)
    a = _size(rng)
    return (query, keys, rng.standard_normal((query.shape[-1] + keys.shape[-1], a)),
            rng.standard_normal(a)), {}


def _torch_concat(query, keys, w, v):
    """Luong's formula literally: concatenate [h_t; h_j] for every pair, then one matmul."""
    pairs = torch.cat([query.unsqueeze(-2).expand(*query.shape[:-1], keys.shape[-2],
                                                  query.shape[-1]),
                       keys.unsqueeze(-3).expand(*keys.shape[:-2], query.shape[-2],
                                                 *keys.shape[-2:])], -1)
    return torch.tanh(pairs @ w) @ v


def _attend_inputs(rng):
    lead = _shape(rng, 1, 2, 3)
    t_q, s, dv = _size(rng), _size(rng, 2), _size(rng)
    mask = rng.random((*lead, t_q, s)) < 0.7
    mask[..., 0, :] = False  # a query with nothing to read: zero weights, zero context
    mask[..., 1:, :2] = True
    return (rng.standard_normal((*lead, t_q, s)), rng.standard_normal((*lead, s, dv))), {
        "mask": mask}


def _torch_attend(scores, values, *, mask):
    any_key = mask.any(-1, keepdim=True)
    scores = torch.where(any_key, scores.masked_fill(~mask, float("-inf")), 0.0)
    return (torch.softmax(scores, -1) * any_key) @ values


def _relu_mlp_inputs(rng):
    """No kink trouble here: both sides differentiate, neither takes differences, and a
    continuous draw never lands exactly on 0."""
    lead, c, hidden = _shape(rng, 1, 3), _size(rng), _size(rng, 1, 8)
    bias = rng.random() < 0.75
    return (rng.standard_normal((*lead, c)), rng.standard_normal((c, hidden)),
            rng.standard_normal(hidden) if bias else None, rng.standard_normal((hidden, c)),
            rng.standard_normal(c) if bias else None), {}


def _torch_relu_mlp(x, w_1, b_1, w_2, b_2):
    return F.linear(torch.relu(F.linear(x, w_1.T, b_1)), w_2.T, b_2)


def _cross_attention_inputs(rng):
    b, t_q, t_k = _size(rng, 1, 3), _size(rng), _size(rng, 2)
    n_head, d = _size(rng, 1, 3), _size(rng, 1, 3)
    c = n_head * d
    bias = rng.random() < 0.75
    padding = rng.random((b, 1, 1, t_k)) < 0.7
    padding[..., :2] = True  # a padded source still has real tokens to read
    return (rng.standard_normal((b, t_q, c)), rng.standard_normal((b, t_k, c)),
            rng.standard_normal((c, c)), rng.standard_normal(c) if bias else None,
            rng.standard_normal((c, 2 * c)), rng.standard_normal(2 * c) if bias else None,
            rng.standard_normal((c, c)), rng.standard_normal(c) if bias else None), {
        "n_head": n_head, "mask": padding}


def _torch_cross_attention(x, memory, w_q, b_q, w_kv, b_kv, w_o, b_o, *, n_head, mask):
    b, t_q, c = x.shape
    q = F.linear(x, w_q.T, b_q).view(b, t_q, n_head, c // n_head).transpose(1, 2)
    k, v = (a.view(b, -1, n_head, c // n_head).transpose(1, 2)
            for a in F.linear(memory, w_kv.T, b_kv).split(c, dim=-1))
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return F.linear(heads.transpose(1, 2).reshape(b, t_q, c), w_o.T, b_o)


def _layer_norm_inputs(rng):
    lead, c = _shape(rng, 1, 3), _size(rng, 3, 6)  # with 1 or 2 features x_hat is 0 or +-1
    # whatever x is, so dx is exactly 0 and a relative error means nothing
    gamma = 1.0 + rng.standard_normal(c) if rng.random() < 0.8 else None
    bias = rng.standard_normal(c) if rng.random() < 0.75 else None
    return (3.0 * rng.standard_normal((*lead, c)) + 1.0, gamma, bias), {}


def _torch_layer_norm(x, gamma, beta=None, *, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=eps)


def _feed_forward_inputs(rng):
    lead, c, hidden = _shape(rng, 1, 3), _size(rng), _size(rng, 1, 8)
    bias = rng.random() < 0.75
    return (rng.standard_normal((*lead, c)), rng.standard_normal((c, hidden)),
            rng.standard_normal(hidden) if bias else None, rng.standard_normal((hidden, c)),
            rng.standard_normal(c) if bias else None), {
        "approximate": str(rng.choice(["none", "tanh"]))}


def _torch_gelu_without_cancellation(z, approximate):
    """GELU by identities that do not cancel for z << 0: 0.5 (1 + tanh u) = sigmoid(2u) and
    0.5 (1 + erf(z / sqrt 2)) = 0.5 erfc(-z / sqrt 2). ``F.gelu`` computes 1 + tanh / 1 + erf,
    which rounds to 0 there (at z = -6 the tanh form keeps only 1e-5 of its digits); the GELU
    cases above check ``F.gelu`` itself on inputs where it does not, but the MLP's
    pre-activations are unbounded, and one hidden unit far below 0 (seed 21781: width 1) made
    every gradient of the case disagree with torch's rounded ones."""
    if approximate == "tanh":
        u = math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)
        return z * torch.sigmoid(2.0 * u)
    return 0.5 * z * torch.special.erfc(-z / math.sqrt(2.0))


def _torch_feed_forward(x, w_fc, b_fc, w_proj, b_proj, *, approximate):
    hidden = _torch_gelu_without_cancellation(F.linear(x, w_fc.T, b_fc), approximate)
    return F.linear(hidden, w_proj.T, b_proj)


def _positional_inputs(rng):
    lead, t, c = _shape(rng, 0, 2), _size(rng), _size(rng)
    offset = _size(rng, 0, 3)
    return (rng.standard_normal((*lead, t, c)), rng.standard_normal((t + offset + 2, c))), {
        "offset": offset}


def _torch_positional(x, table, *, offset):
    return x + table[offset:offset + x.shape[-2]]


def _label_smoothing_inputs(rng):
    lead, k = _classes(rng)
    return (3.0 * rng.standard_normal((*lead, k)),), {
        "targets": rng.integers(0, k, size=lead), "smoothing": float(rng.choice([0.0, 0.1, 0.3]))}


def _torch_label_smoothing(logits, *, targets, smoothing):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           label_smoothing=smoothing)


CASES: list[ParityCase] = [
    ParityCase("softmax", softmax_forward, softmax_backward,
               lambda x, *, axis=-1: torch.softmax(x, dim=axis), _axis_inputs),
    ParityCase("log_softmax", log_softmax_forward, log_softmax_backward,
               lambda x, *, axis=-1: torch.log_softmax(x, dim=axis), _axis_inputs),
    ParityCase("cross_entropy (NLL of log-probabilities)", cross_entropy_forward,
               cross_entropy_backward, _nll_reference, _cross_entropy_inputs),
    ParityCase("linear", linear_forward, linear_backward, _linear_reference, _linear_inputs,
               arg_names=("x", "w", "b")),
    ParityCase("sigmoid", sigmoid_forward, sigmoid_backward, torch.sigmoid,
               lambda rng: ((2.0 * _x(rng),), {})),
    ParityCase("tanh", tanh_forward, tanh_backward, torch.tanh,
               lambda rng: ((2.0 * _x(rng),), {}), tol_float32=TANH_FLOAT32_TOL,
               reason=TANH_FLOAT32_REASON),
    ParityCase("relu", relu_forward, relu_backward, torch.relu,
               lambda rng: ((_away_from_zero(rng),), {})),
    ParityCase("gelu (exact)", gelu_forward, gelu_backward,
               lambda x, *, approximate: F.gelu(x, approximate=approximate),
               lambda rng: ((2.0 * _x(rng),), {"approximate": "none"}),
               tol=GELU_TOL, reason=GELU_REASON),
    ParityCase("gelu (tanh)", gelu_forward, gelu_backward,
               lambda x, *, approximate: F.gelu(x, approximate=approximate),
               lambda rng: ((2.0 * _x(rng),), {"approximate": "tanh"}),
               tol=GELU_TOL, reason=GELU_REASON),
    ParityCase("softmax_cross_entropy", softmax_cross_entropy_forward,
               softmax_cross_entropy_backward, _cross_entropy_reference, _logits_inputs),
    ParityCase("mse", mse_forward, mse_backward, F.mse_loss, _mse_inputs,
               arg_names=("prediction", "target")),
    ParityCase("dropout (mask given)", dropout_forward, dropout_backward, _dropout_reference,
               _dropout_inputs),
    ParityCase("embedding", embedding_forward, embedding_backward, _embedding_reference,
               _embedding_inputs),
    ParityCase("batchnorm (training)", batchnorm_forward, batchnorm_backward,
               _batchnorm_reference, _batchnorm_train_inputs, arg_names=("x", "gamma", "beta")),
    ParityCase("batchnorm (inference)", batchnorm_forward, batchnorm_backward,
               _batchnorm_reference, _batchnorm_eval_inputs, arg_names=("x", "gamma", "beta")),
    *RECURRENT_CASES,
    ParityCase("word2vec skip-gram, negative sampling", sgns_forward, sgns_backward,
               _sgns_reference, _sgns_inputs, arg_names=("v_center", "u_context", "u_negative")),
    ParityCase("scaled dot-product attention", scaled_dot_product_attention_forward,
               scaled_dot_product_attention_backward, _torch_sdpa, _sdpa_inputs,
               arg_names=("q", "k", "v"),
               tol_float32=ATTENTION_FLOAT32_TOL, reason=ATTENTION_FLOAT32_REASON),
    ParityCase("scaled dot-product attention (queries that see nothing)",
               scaled_dot_product_attention_forward, scaled_dot_product_attention_backward,
               _softmax_attention_with_empty_rows,
               lambda rng: _sdpa_inputs(rng, fully_masked_rows=True), arg_names=("q", "k", "v"),
               tol_float32=ATTENTION_FLOAT32_TOL, reason=ATTENTION_FLOAT32_REASON),
    ParityCase("self-attention (one head)", self_attention_forward, self_attention_backward,
               _torch_self_attention, _self_attention_inputs,
               arg_names=("x", "w_q", "w_k", "w_v"),
               tol_float32=ATTENTION_FLOAT32_TOL, reason=ATTENTION_FLOAT32_REASON),
    ParityCase("multi-head self-attention", multi_head_self_attention_forward,
               multi_head_self_attention_backward, _torch_mha, _mha_inputs,
               arg_names=("x", "w_qkv", "b_qkv", "w_o", "b_o"),
               tol_float32=ATTENTION_FLOAT32_TOL, reason=ATTENTION_FLOAT32_REASON),
    ParityCase("additive score (Bahdanau)", additive_score_forward, additive_score_backward,
               _torch_additive, _additive_inputs,
               arg_names=("query", "projected_keys", "w_query", "v")),
    ParityCase("dot score (Luong)", dot_score_forward, dot_score_backward,
               lambda q, k: q @ k.transpose(-1, -2), lambda rng: (_query_keys(rng, True), {}),
               arg_names=("query", "keys")),
    ParityCase("general score (Luong)", general_score_forward, general_score_backward,
               lambda q, k, w: q @ w @ k.transpose(-1, -2), _general_inputs,
               arg_names=("query", "keys", "w")),
    ParityCase("concat score (Luong)", concat_score_forward, concat_score_backward,
               _torch_concat, _concat_inputs, arg_names=("query", "keys", "w", "v")),
    ParityCase("attend (masked softmax, weighted sum)", attend_forward, attend_backward,
               _torch_attend, _attend_inputs, arg_names=("scores", "values")),
    ParityCase("feed-forward (ReLU MLP, phase 4)", phase4_feed_forward_forward,
               phase4_feed_forward_backward, _torch_relu_mlp, _relu_mlp_inputs,
               arg_names=("x", "w_1", "b_1", "w_2", "b_2")),
    ParityCase("cross-attention (encoder-decoder)", cross_attention_forward,
               cross_attention_backward, _torch_cross_attention, _cross_attention_inputs,
               tol_float32=ATTENTION_FLOAT32_TOL, reason=ATTENTION_FLOAT32_REASON,
               arg_names=("x", "memory", "w_q", "b_q", "w_kv", "b_kv", "w_o", "b_o")),
    ParityCase("layer norm", layer_norm_forward, layer_norm_backward, _torch_layer_norm,
               _layer_norm_inputs, arg_names=("x", "gamma", "beta")),
    ParityCase("feed-forward (GELU MLP)", feed_forward_forward, feed_forward_backward,
               _torch_feed_forward, _feed_forward_inputs, tol=GELU_TOL, reason=GELU_REASON,
               arg_names=("x", "w_fc", "b_fc", "w_proj", "b_proj")),
    ParityCase("positional encoding (added table)", positional_encoding_forward,
               positional_encoding_backward, _torch_positional, _positional_inputs,
               arg_names=("x", "table")),
    ParityCase("cross-entropy with label smoothing", label_smoothing_cross_entropy_forward,
               label_smoothing_cross_entropy_backward, _torch_label_smoothing,
               _label_smoothing_inputs),
]
