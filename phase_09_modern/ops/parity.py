"""Phase 9's NumPy ops, each paired with a torch reference for phase 6's harness.

Phase 6 cannot import phase 9 (the phase-order rule), so phase 9 keeps its own list, ``CASES``,
and its own coverage check: ``missing_cases`` names every ``*_forward`` of a phase 9 NumPy module
(a module that does not import torch) that no case covers. Shapes are drawn from the generator,
small, so that several seeds cover several shapes. The torch side uses torch's own ops where it
has them (``F.rms_norm``, ``F.scaled_dot_product_attention`` with ``enable_gqa``), so the two
sides share no code.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from phase_06_torch_parity.harness import ParityCase
from phase_09_modern.models.spiking_gpt import lif as torch_lif
from phase_09_modern.ops.alibi import (
    alibi_attention_backward,
    alibi_attention_forward,
    alibi_slopes,
)
from phase_09_modern.ops.dpo import dpo_loss_backward, dpo_loss_forward
from phase_09_modern.ops.flash_attention import flash_attention_backward, flash_attention_forward
from phase_09_modern.ops.grouped_query import (
    grouped_query_attention_backward,
    grouped_query_attention_forward,
    grouped_query_self_attention_backward,
    grouped_query_self_attention_forward,
)
from phase_09_modern.ops.lif_neuron import lif_backward, lif_forward
from phase_09_modern.ops.moe import (
    load_balancing_loss_backward,
    load_balancing_loss_forward,
    moe_backward,
    moe_forward,
)
from phase_09_modern.ops.rmsnorm import (
    qk_norm_attention_backward,
    qk_norm_attention_forward,
    rms_norm_backward,
    rms_norm_forward,
)
from phase_09_modern.ops.rope import rope_backward, rope_forward
from phase_09_modern.ops.sliding_window import (
    sliding_window_attention_backward,
    sliding_window_attention_forward,
)
from phase_09_modern.ops.swiglu import swiglu_backward, swiglu_forward

PACKAGE = "phase_09_modern"
NOT_OPS = ("__main__", "parity", "flash_bench", "runner", "experiment")


def _int(rng, low, high):
    return int(rng.integers(low, high + 1))


def _lead(rng):
    return tuple(_int(rng, 1, 3) for _ in range(_int(rng, 0, 2)))


# RoPE ----

def _rope_inputs(layout):
    def make(rng):
        t, d = _int(rng, 1, 6), 2 * _int(rng, 1, 4)
        positions = rng.integers(0, 5000, size=t)
        return (rng.standard_normal((*_lead(rng), t, d)),), {
            "positions": positions, "base": float(rng.choice([100.0, 10000.0])),
            "layout": layout}
    return make


def _torch_angles(positions, d, base, dtype):
    inv_freq = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    return (positions.to(torch.float64)[:, None] * inv_freq[None, :]).to(dtype)


def _torch_rope(x, *, positions, base, layout):
    """Meta's LLaMA code (pairs as complex numbers) or Hugging Face's rotate-half."""
    angles = _torch_angles(positions, x.shape[-1], base, x.dtype)
    if layout == "interleaved":
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        rotated = pairs * torch.polar(torch.ones_like(angles), angles)
        return torch.view_as_real(rotated).flatten(-2)
    cos, sin = torch.cat((angles.cos(), angles.cos()), -1), torch.cat((angles.sin(),
                                                                         angles.sin()), -1)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


# RMSNorm, QK-norm ----

def _rms_norm_inputs(rng):
    c = _int(rng, 2, 6)  # with C = 1 the output is sign(x) and its gradient ~ eps / |x|^3
    gamma = rng.standard_normal(c) if rng.random() < 0.8 else None
    return (rng.standard_normal((*_lead(rng), _int(rng, 1, 4), c)), gamma), {
        "eps": float(rng.choice([1e-6, 1e-5]))}


def _torch_rms_norm(x, gamma, *, eps):
    return F.rms_norm(x, (x.shape[-1],), gamma, eps)


def _torch_bool_mask(t_q, t_k, causal):
    if not causal:
        return None
    return torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)


def _heads(rng, b, h, t, d):
    return rng.standard_normal((b, h, t, d))


def _qk_norm_inputs(rng):
    b, h, t_q, dv = (_int(rng, 1, 3) for _ in range(4))
    d = _int(rng, 2, 4)
    t_k = t_q + _int(rng, 0, 2)
    return (_heads(rng, b, h, t_q, d), _heads(rng, b, h, t_k, d), _heads(rng, b, h, t_k, dv),
            1.0 + 0.3 * rng.standard_normal(d), 1.0 + 0.3 * rng.standard_normal(d)), {
        "causal": bool(rng.random() < 0.5), "eps": 1e-6}


def _torch_qk_norm_attention(q, k, v, gamma_q, gamma_k, *, causal, eps):
    mask = _torch_bool_mask(q.shape[-2], k.shape[-2], causal)
    return F.scaled_dot_product_attention(_torch_rms_norm(q, gamma_q, eps=eps),
                                          _torch_rms_norm(k, gamma_k, eps=eps), v,
                                          attn_mask=mask)


# SwiGLU ----

def _swiglu_inputs(rng):
    c, f = _int(rng, 1, 5), _int(rng, 1, 6)
    return (rng.standard_normal((*_lead(rng), _int(rng, 1, 4), c)),
            rng.standard_normal((c, f)), rng.standard_normal((c, f)),
            rng.standard_normal((f, c))), {}


def _torch_swiglu(x, w1, w3, w2):
    return (F.silu(x @ w1) * (x @ w3)) @ w2


# Grouped-query attention ----

def _gqa_inputs(rng):
    b, g, rep, d = _int(rng, 1, 2), _int(rng, 1, 3), _int(rng, 1, 3), _int(rng, 1, 4)
    t_q = _int(rng, 1, 5)
    t_k = t_q + _int(rng, 0, 2)
    return (_heads(rng, b, g * rep, t_q, d), _heads(rng, b, g, t_k, d),
            _heads(rng, b, g, t_k, _int(rng, 1, 3))), {"causal": bool(rng.random() < 0.5)}


def _torch_gqa(q, k, v, *, causal, mask=None):
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=_torch_bool_mask(q.shape[-2], k.shape[-2], causal), enable_gqa=True)


def _gqa_layer_inputs(rng):
    b, t, g, rep, d = (_int(rng, 1, 3) for _ in range(5))
    c = _int(rng, 2, 6)
    h = g * rep
    return (rng.standard_normal((b, t, c)), rng.standard_normal((c, h * d)),
            rng.standard_normal((c, g * d)), rng.standard_normal((c, g * d)),
            rng.standard_normal((h * d, c))), {
        "n_head": h, "n_kv_head": g, "causal": bool(rng.random() < 0.5)}


def _torch_gqa_layer(x, w_q, w_k, w_v, w_o, *, n_head, n_kv_head, causal):
    b, t, _ = x.shape
    d = w_q.shape[1] // n_head

    def heads(w, n):
        return (x @ w).reshape(b, t, n, d).transpose(1, 2)

    y = _torch_gqa(heads(w_q, n_head), heads(w_k, n_kv_head), heads(w_v, n_kv_head),
                   causal=causal)
    return y.transpose(1, 2).reshape(b, t, n_head * d) @ w_o


# FlashAttention ----

def _flash_inputs(rng):
    lead = _lead(rng)
    t_q, d, dv = _int(rng, 2, 9), _int(rng, 1, 4), _int(rng, 1, 4)
    t_k = t_q + _int(rng, 0, 3)
    return (rng.standard_normal((*lead, t_q, d)), rng.standard_normal((*lead, t_k, d)),
            rng.standard_normal((*lead, t_k, dv))), {
        "causal": bool(rng.random() < 0.5), "block_q": _int(rng, 1, 4),
        "block_k": _int(rng, 1, 4), "kernel": str(rng.choice(["numpy", "numba"]))}


def _torch_attention(q, k, v, *, causal, block_q=None, block_k=None, kernel=None):
    """torch's attention knows nothing of tiles: the tiling options are ignored."""
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=_torch_bool_mask(q.shape[-2], k.shape[-2], causal))


# Sliding window, ALiBi ----

def _attention_inputs(rng):
    b, h, d, dv = (_int(rng, 1, 3) for _ in range(4))
    t_q = _int(rng, 1, 7)
    t_k = t_q + _int(rng, 0, 3)
    return _heads(rng, b, h, t_q, d), _heads(rng, b, h, t_k, d), _heads(rng, b, h, t_k, dv)


def _sliding_inputs(rng):
    return _attention_inputs(rng), {"window": _int(rng, 1, 6)}


def _torch_sliding_window(q, k, v, *, window):
    t_q, t_k = q.shape[-2], k.shape[-2]
    position = torch.arange(t_q)[:, None] + (t_k - t_q)
    j = torch.arange(t_k)[None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=(j <= position) &
                                          (j > position - window))


def _alibi_inputs(rng):
    return _attention_inputs(rng), {"causal": bool(rng.random() < 0.7)}


def _torch_alibi(q, k, v, *, causal):
    """ALiBi as a float attention mask: -m_h |i' - j|, and -inf above the diagonal."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    position = torch.arange(t_q)[:, None] + (t_k - t_q)
    distance = (position - torch.arange(t_k)[None, :]).abs().to(q.dtype)
    slopes = torch.tensor(alibi_slopes(q.shape[1]), dtype=q.dtype)
    bias = -slopes[:, None, None] * distance
    if causal:
        bias = bias.masked_fill(torch.arange(t_k)[None, :] > position, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


# Mixture of experts ----

def _moe_inputs(rng):
    n, c, f, e = _int(rng, 1, 6), _int(rng, 1, 4), _int(rng, 1, 4), _int(rng, 2, 5)
    # k >= 2: with k = 1 the renormalised gate is exactly 1, the router's gradient exactly 0,
    # and torch's rounding of p / p would make any relative error 1
    return (rng.standard_normal((n, c)), rng.standard_normal((c, e)),
            rng.standard_normal((e, c, f)), rng.standard_normal((e, c, f)),
            rng.standard_normal((e, f, c))), {"k": _int(rng, 2, e)}


def _torch_moe(x, w_gate, w1, w3, w2, *, k):
    """Dense: every expert on every token, weighted by the renormalised top-k gates."""
    logits = x @ w_gate
    top = torch.topk(logits.detach(), k, dim=-1).indices
    chosen = torch.softmax(logits, dim=-1).gather(-1, top)
    combine = torch.zeros_like(logits).scatter(-1, top, chosen / chosen.sum(-1, keepdim=True))
    hidden = F.silu(torch.einsum("nc,ecf->nef", x, w1)) * torch.einsum("nc,ecf->nef", x, w3)
    return torch.einsum("ne,nef,efc->nc", combine, hidden, w2)


def _balance_inputs(rng):
    # Every token picks expert 0 first and k < E, so the counts are never uniform: with uniform
    # counts the loss is 1 whatever the logits, its gradient exactly 0 (no relative error).
    n, e = _int(rng, 1, 8), _int(rng, 2, 6)
    k = _int(rng, 1, e - 1)
    others = [1 + rng.permutation(e - 1)[:k - 1] for _ in range(n)]
    return (2.0 * rng.standard_normal((n, e)),), {
        "expert_index": np.stack([np.concatenate([[0], rest]) for rest in others])}


def _torch_balance(logits, *, expert_index):
    n_expert = logits.shape[-1]
    counts = F.one_hot(expert_index, n_expert).sum(dim=(0, 1)).to(logits.dtype)
    return n_expert * (counts / expert_index.numel() * torch.softmax(logits, -1).mean(0)).sum()


# DPO ----

def _dpo_inputs(rng):
    b = _int(rng, 1, 6)
    return tuple(-10.0 * rng.random(b) - 5.0 for _ in range(4)), {
        "beta": float(rng.choice([0.1, 0.5, 2.0]))}


def _torch_dpo(policy_chosen, policy_rejected, reference_chosen, reference_rejected, *, beta):
    """As in the DPO paper's reference code: -logsigmoid(beta * (pi_logratios - ref_logratios))."""
    logits = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)
    return -F.logsigmoid(beta * logits).mean()


# Leaky integrate-and-fire ----

def _lif_inputs(rng):
    # Inputs of scale ~ threshold, so that some neurons fire once, some several times, some
    # never; a value exactly on the threshold has probability 0.
    return (rng.standard_normal((*_lead(rng), _int(rng, 1, 6))),), {
        "beta": float(rng.choice([0.5, 0.9, 1.0])), "threshold": float(rng.choice([0.5, 1.0])),
        "steps": _int(rng, 1, 8), "surrogate": str(rng.choice(["fast_sigmoid", "arctan"])),
        "slope": float(rng.choice([2.0, 5.0, 25.0])),
        "reset": str(rng.choice(["subtract", "zero"])), "detach_reset": bool(rng.random() < 0.5)}


CASES = [
    ParityCase("rope interleaved", rope_forward, rope_backward, _torch_rope,
               _rope_inputs("interleaved")),
    ParityCase("rope rotate-half", rope_forward, rope_backward, _torch_rope, _rope_inputs("half")),
    ParityCase("rms_norm", rms_norm_forward, rms_norm_backward, _torch_rms_norm, _rms_norm_inputs,
               arg_names=("x", "gamma")),
    ParityCase("qk_norm_attention", qk_norm_attention_forward, qk_norm_attention_backward,
               _torch_qk_norm_attention, _qk_norm_inputs,
               arg_names=("q", "k", "v", "gamma_q", "gamma_k")),
    ParityCase("swiglu", swiglu_forward, swiglu_backward, _torch_swiglu, _swiglu_inputs,
               arg_names=("x", "w1", "w3", "w2")),
    ParityCase("grouped_query_attention", grouped_query_attention_forward,
               grouped_query_attention_backward, _torch_gqa, _gqa_inputs,
               arg_names=("q", "k", "v")),
    ParityCase("grouped_query_self_attention", grouped_query_self_attention_forward,
               grouped_query_self_attention_backward, _torch_gqa_layer, _gqa_layer_inputs,
               arg_names=("x", "w_q", "w_k", "w_v", "w_o")),
    ParityCase("flash_attention", flash_attention_forward, flash_attention_backward,
               _torch_attention, _flash_inputs, arg_names=("q", "k", "v")),
    ParityCase("sliding_window_attention", sliding_window_attention_forward,
               sliding_window_attention_backward, _torch_sliding_window, _sliding_inputs,
               arg_names=("q", "k", "v")),
    ParityCase("alibi_attention", alibi_attention_forward, alibi_attention_backward,
               _torch_alibi, _alibi_inputs, arg_names=("q", "k", "v")),
    ParityCase("moe", moe_forward, moe_backward, _torch_moe, _moe_inputs,
               arg_names=("x", "w_gate", "w1", "w3", "w2")),
    ParityCase("load_balancing_loss", load_balancing_loss_forward, load_balancing_loss_backward,
               _torch_balance, _balance_inputs),
    ParityCase("dpo_loss", dpo_loss_forward, dpo_loss_backward, _torch_dpo, _dpo_inputs,
               arg_names=("policy_chosen", "policy_rejected", "reference_chosen",
                          "reference_rejected")),
    ParityCase("lif", lif_forward, lif_backward, torch_lif, _lif_inputs),
]


# Coverage ----

def _imports_torch(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(name.split(".")[0] == "torch" for name in names):
            return True
    return False


def numpy_modules(package: str = PACKAGE) -> list[str]:
    """Every module of the package, subpackages included, that does not import torch (tests,
    scripts and this file excluded): where a NumPy op lives, wherever it is put."""
    root = importlib.import_module(package)
    found = []
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        leaf = info.name.rsplit(".", 1)[1]
        if info.ispkg or leaf in NOT_OPS or ".tests." in f"{info.name}.":
            continue
        path = Path(importlib.util.find_spec(info.name).origin)
        if not _imports_torch(path):
            found.append(info.name)
    return sorted(found)


def numpy_ops(package: str = PACKAGE) -> set[str]:
    """``module.function`` for every ``*_forward`` function defined in the NumPy modules."""
    ops = set()
    for module_name in numpy_modules(package):
        module = importlib.import_module(module_name)
        ops |= {f"{module_name}.{name}" for name, function in
                inspect.getmembers(module, inspect.isfunction)
                if name.endswith("_forward") and function.__module__ == module_name}
    return ops


def missing_cases(cases=None, package: str = PACKAGE) -> list[str]:
    """The ops that no case covers, sorted."""
    cases = CASES if cases is None else cases
    return sorted(numpy_ops(package) - {case.op for case in cases})
