"""The torch twin of phase 5's NumPy GPT, and the name mapping between their weights.

Same architecture, same switches (Pre-LN / Post-LN, learned / sinusoidal positions, biases,
tied head, exact / tanh GELU), written the way nanoGPT writes it, so the state-dict names are
nanoGPT's and GPT-2's: ``transformer.h.0.attn.c_attn.weight`` and so on. The mapping:

    NumPy (phase 5)              torch twin                          layout
    wte.weight                   transformer.wte.weight              same (V, C)
    wpe.weight / wpe.table       transformer.wpe.weight / .table     same (block_size, C)
    h.i.ln_1.gamma / .beta       transformer.h.i.ln_1.weight / .bias same (C,)
    h.i.attn.w_qkv / b_qkv       transformer.h.i.attn.c_attn.*       weight transposed
    h.i.attn.w_o / b_o           transformer.h.i.attn.c_proj.*       weight transposed
    h.i.ln_2.gamma / .beta       transformer.h.i.ln_2.weight / .bias same
    h.i.mlp.w_fc / b_fc          transformer.h.i.mlp.c_fc.*          weight transposed
    h.i.mlp.w_proj / b_proj      transformer.h.i.mlp.c_proj.*        weight transposed
    ln_f.gamma / .beta           transformer.ln_f.weight / .bias     same
    lm_head.w (untied only)      lm_head.weight                      transposed

NumPy stores a linear weight (in, out), as GPT-2's checkpoints do; ``nn.Linear`` stores
(out, in). With a tied head, torch's ``lm_head.weight`` IS ``transformer.wte.weight``.
Notes: ``phase_06_torch_parity/notes/02_whole_model_parity.md``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phase_05_transformer_numpy.gpt import GPTConfig, block_init_std
from phase_05_transformer_numpy.positional import sinusoidal_table

# (NumPy name pattern, torch name pattern, transpose?); {i} is a block index.
_NAME_RULES: list[tuple[str, str, bool]] = [
    ("wte.weight", "transformer.wte.weight", False),
    ("wpe.weight", "transformer.wpe.weight", False),
    ("wpe.table", "transformer.wpe.table", False),
    ("h.{i}.ln_1.gamma", "transformer.h.{i}.ln_1.weight", False),
    ("h.{i}.ln_1.beta", "transformer.h.{i}.ln_1.bias", False),
    ("h.{i}.attn.w_qkv", "transformer.h.{i}.attn.c_attn.weight", True),
    ("h.{i}.attn.b_qkv", "transformer.h.{i}.attn.c_attn.bias", False),
    ("h.{i}.attn.w_o", "transformer.h.{i}.attn.c_proj.weight", True),
    ("h.{i}.attn.b_o", "transformer.h.{i}.attn.c_proj.bias", False),
    ("h.{i}.ln_2.gamma", "transformer.h.{i}.ln_2.weight", False),
    ("h.{i}.ln_2.beta", "transformer.h.{i}.ln_2.bias", False),
    ("h.{i}.mlp.w_fc", "transformer.h.{i}.mlp.c_fc.weight", True),
    ("h.{i}.mlp.b_fc", "transformer.h.{i}.mlp.c_fc.bias", False),
    ("h.{i}.mlp.w_proj", "transformer.h.{i}.mlp.c_proj.weight", True),
    ("h.{i}.mlp.b_proj", "transformer.h.{i}.mlp.c_proj.bias", False),
    ("ln_f.gamma", "transformer.ln_f.weight", False),
    ("ln_f.beta", "transformer.ln_f.bias", False),
    ("lm_head.w", "lm_head.weight", True),
]


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(re.escape("{i}"), r"(\d+)") + "$")


_TO_TORCH = [(_pattern(n), t, flip) for n, t, flip in _NAME_RULES]
_TO_NUMPY = [(_pattern(t), n, flip) for n, t, flip in _NAME_RULES]


def _translate(name: str, rules) -> tuple[str, bool]:
    for pattern, template, flip in rules:
        match = pattern.match(name)
        if match:
            return template.replace("{i}", match.group(1)) if match.groups() else template, flip
    raise KeyError(f"no mapping for the weight name {name!r}")


def torch_name(numpy_name: str) -> str:
    """``h.0.attn.w_qkv`` -> ``transformer.h.0.attn.c_attn.weight``."""
    return _translate(numpy_name, _TO_TORCH)[0]


def numpy_name(torch_name: str) -> str:
    """``transformer.h.0.attn.c_attn.weight`` -> ``h.0.attn.w_qkv``."""
    return _translate(torch_name, _TO_NUMPY)[0]


def numpy_to_torch_state_dict(arrays: dict[str, np.ndarray], config: GPTConfig,
                              dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Phase 5 parameters (and buffers) by NumPy name -> a state dict the twin loads.

    With a tied head, ``lm_head.weight`` is filled from ``wte.weight``, as torch expects both.
    """
    state = {}
    for name, value in arrays.items():
        target, flip = _translate(name, _TO_TORCH)
        value = np.ascontiguousarray(value.T if flip else value)
        state[target] = torch.from_numpy(value.copy())
        if dtype is not None:
            state[target] = state[target].to(dtype)
    if config.tie_weights:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def torch_to_numpy_params(state: dict[str, torch.Tensor], config: GPTConfig
                          ) -> dict[str, np.ndarray]:
    """A twin's state dict (or its gradients by the same names) -> NumPy names and layouts.

    With a tied head, ``lm_head.weight`` is the token table itself and is dropped.
    """
    arrays = {}
    for name, tensor in state.items():
        if tensor is None or (config.tie_weights and name == "lm_head.weight"):
            continue
        target, flip = _translate(name, _TO_NUMPY)
        value = tensor.detach().cpu().numpy()
        arrays[target] = np.ascontiguousarray(value.T if flip else value)
    return arrays


def init_gpt2_weights(model: nn.Module, n_layer: int, block_std: float = 0.02) -> None:
    """GPT-2's initialisation, as phase 5's: every linear and embedding weight N(0, 0.02^2),
    biases 0 (norms keep torch's ones and zeros), and the projections that write into the
    residual stream (``c_proj``) N(0, (0.02 / sqrt(2 n_layer))^2).

    ``block_std`` other than 0.02 (phase 5's ``block_init_std`` for ``init="width"``) then
    redraws the weight matrices inside the blocks (names ``transformer.h.*``) from
    N(0, block_std^2), the ``c_proj`` ones divided by sqrt(2 n_layer) again; the default leaves
    nanoGPT's draws untouched, to the bit."""
    def init_module(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    model.apply(init_module)  # children before parents: the draw order of nanoGPT's init
    proj_std = 0.02 / math.sqrt(2 * n_layer)
    for name, param in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(param, mean=0.0, std=proj_std)
    if block_std != 0.02:
        redraw_block_weights(model, n_layer, block_std, ("c_proj.weight",))


def redraw_block_weights(model: nn.Module, n_layer: int, block_std: float,
                         residual: tuple[str, ...]) -> None:
    """Draw every weight matrix inside the blocks (``transformer.h.*``) again from
    N(0, block_std^2), those whose names end in one of ``residual`` (the projections that write
    into the residual stream) from N(0, (block_std / sqrt(2 n_layer))^2)."""
    for name, param in model.named_parameters():
        if name.startswith("transformer.h.") and param.ndim == 2:
            scale = math.sqrt(2 * n_layer) if name.endswith(residual) else 1.0
            nn.init.normal_(param, mean=0.0, std=block_std / scale)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (a.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for a in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.approximate = config.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.pre_ln = config.pre_ln
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_ln:
            x = x + self.drop(self.attn(self.ln_1(x)))
            return x + self.drop(self.mlp(self.ln_2(x)))
        x = self.ln_1(x + self.drop(self.attn(x)))
        return self.ln_2(x + self.drop(self.mlp(x)))


class SinusoidalPositions(nn.Module):
    """The fixed table, a buffer: ``transformer.wpe.table``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.register_buffer("table", torch.from_numpy(
            sinusoidal_table(config.block_size, config.n_embd, dtype=np.float32)))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


class TorchGPT(nn.Module):
    """``forward(idx, targets=None)`` -> ``(logits, loss)``, as phase 5's ``GPT``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        positions = (nn.Embedding(config.block_size, config.n_embd)
                     if config.positions == "learned" else SinusoidalPositions(config))
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=positions,
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        init_gpt2_weights(self, config.n_layer, block_init_std(config))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        t = idx.shape[1]
        if t > self.config.block_size:
            raise ValueError(f"a sequence of {t} tokens is longer than the context "
                             f"block_size = {self.config.block_size}")
        positions = torch.arange(t, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(positions)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def twin_of(model, dtype: torch.dtype = torch.float64) -> TorchGPT:
    """A ``TorchGPT`` holding exactly the weights of a phase 5 ``GPT`` (a copy)."""
    twin = TorchGPT(model.config).to(dtype)
    twin.load_state_dict(numpy_to_torch_state_dict(model.state_dict(), model.config, dtype))
    return twin


def load_twin_weights_into(model, twin: TorchGPT) -> None:
    """The other way: overwrite a phase 5 ``GPT``'s weights with the twin's."""
    arrays = torch_to_numpy_params(twin.state_dict(), model.config)
    model.load_state_dict({name: value.astype(model.dtype) for name, value in arrays.items()})
