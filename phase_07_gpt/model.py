"""GPT in PyTorch, in one file: phase 5's NumPy GPT again, with autograd doing the backward.

    x = wte[ids] + wpe[0:T]                    token and position embeddings, (B, T, C)
    x = h.N-1(... h.0(x))                      N blocks: causal self-attention and an MLP
    logits = ln_f(x) @ wte^T                   final norm; the head is the token table, tied

Names are nanoGPT's and GPT-2's (``transformer.h.0.attn.c_attn.weight``), so phase 6's mapping
turns phase 5's NumPy weights into this model's, and GPT-2's checkpoints load with one transpose
(their ``Conv1D`` stores (in, out); ``nn.Linear`` stores (out, in)).
The vocabulary is padded to a multiple of 64 rows (50257 -> 50304 for GPT-2), so the largest
matmul gets tile-friendly shapes; the padded rows are never a target and the logits are cut back
to ``vocab_size`` before anyone sees them.
Notes: ``phase_07_gpt/notes/01_gpt_in_pytorch.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phase_01_nn.config_options import config_from_dict
from phase_05_transformer_numpy.gpt import GPTConfig as NumpyGPTConfig
from phase_05_transformer_numpy.gpt import block_init_std
from phase_06_torch_parity.gpt_twin import init_gpt2_weights


@dataclass(frozen=True)
class GPTConfig(NumpyGPTConfig):
    """Phase 5's architecture and its checks, plus what this model adds. ``gelu`` defaults to
    "tanh", GPT-2's approximation ("none" is the exact erf form); ``pad_vocab_to`` = 1 turns the
    vocabulary padding off."""

    gelu: str = "tanh"
    pad_vocab_to: int = 64
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.pad_vocab_to
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"GPTConfig.pad_vocab_to must be a positive integer, got {value!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"GPTConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps}")

    @property
    def padded_vocab_size(self) -> int:
        return -(-self.vocab_size // self.pad_vocab_to) * self.pad_vocab_to

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GPTConfig:
        return config_from_dict(cls, values)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention. The fast path is ``F.scaled_dot_product_attention``
    (a fused kernel, flash attention on CUDA); ``need_weights=True`` takes the plain path,
    softmax(q k^T / sqrt(d) + causal mask) v, and also returns the weights (B, H, T, T)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (a.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for a in (q, k, v))
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
            y = F.dropout(weights, self.dropout, self.training) @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        y = self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(b, t, c)))
        return y, weights


class MLP(nn.Module):
    """c_proj(gelu(c_fc(x))): C -> 4C -> C."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.approximate = config.gelu
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """Pre-LN (GPT-2): x + attn(ln_1(x)), then + mlp(ln_2(x)).
    Post-LN (Vaswani et al. 2017): ln_1(x + attn(x)), then ln_2(x + mlp(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.pre_ln = config.pre_ln
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        if self.pre_ln:
            a, weights = self.attn(self.ln_1(x), need_weights)
            x = x + a
            return x + self.mlp(self.ln_2(x)), weights
        a, weights = self.attn(x, need_weights)
        x = self.ln_1(x + a)
        return self.ln_2(x + self.mlp(x)), weights


def sinusoidal_table(n_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """(n_positions, dim) float32: even columns sin(p w_i), odd columns cos(p w_i),
    w_i = base^(-2i/dim) (Vaswani et al. 2017), computed in float64 as phase 5 does."""
    angles = (np.arange(n_positions, dtype=np.float64)[:, None]
              * base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim))
    table = np.empty((n_positions, dim))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return torch.from_numpy(table.astype(np.float32))


class SinusoidalPositions(nn.Module):
    """The fixed table as a buffer, ``transformer.wpe.table``: saved, never trained."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(config.block_size, config.n_embd))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


class GPT(nn.Module):
    """``forward(idx, targets=None)`` -> ``(logits (B, T, vocab_size), mean loss or None)``.

    Initialisation as GPT-2: every weight N(0, 0.02^2); the projections that write into the
    residual stream (``c_proj``) N(0, (0.02 / sqrt(2 n_layer))^2), so the stream's variance
    does not grow with depth; biases 0; norms weight 1, bias 0.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        positions = (nn.Embedding(config.block_size, config.n_embd)
                     if config.positions == "learned" else SinusoidalPositions(config))
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
            wpe=positions,
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        init_gpt2_weights(self, config.n_layer, block_init_std(config))

    def num_params(self, non_embedding: bool = True) -> int:
        """Trainable parameters, the tied head counted once; without the position table by
        default, as GPT-2's paper counts."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.positions == "learned":
            n -= self.transformer.wpe.weight.numel()
        return n

    def _trunk(self, idx: torch.Tensor, need_weights: bool):
        if idx.dim() != 2:
            raise ValueError(f"GPT expects token ids of shape (B, T), got {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.config.block_size:
            raise ValueError(f"a sequence of {t} tokens is longer than the context "
                             f"block_size = {self.config.block_size}")
        positions = torch.arange(t, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))
        streams, maps = [], []
        for block in self.transformer.h:
            x, weights = block(x, need_weights)
            streams.append(x)
            maps.append(weights)
        return self.transformer.ln_f(x), streams, maps

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x, _, _ = self._trunk(idx, need_weights=False)
        logits = self.lm_head(x)[..., : self.config.vocab_size]
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def inspect(self, idx: torch.Tensor) -> dict:
        """One forward on the plain attention path, for analysis: ``logits``, ``streams``
        (the residual stream after each block, (B, T, C) each) and ``attention`` (the weights
        of each block, (B, H, T, T) each)."""
        x, streams, maps = self._trunk(idx, need_weights=True)
        return {"logits": self.lm_head(x)[..., : self.config.vocab_size],
                "streams": streams, "attention": maps}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **overrides) -> GPT:
        """GPT-2 weights from a local directory in the Hugging Face format (``config.json`` and
        ``model.safetensors``), or, given a hub name such as "gpt2" and a network, downloaded.
        ``overrides`` may set ``dropout`` (or ``block_size`` smaller than the checkpoint's)."""
        directory = _pretrained_directory(name_or_path)
        hf = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if hf.get("model_type", "gpt2") != "gpt2":
            raise ValueError(f"{directory} holds a {hf.get('model_type')!r} model, not GPT-2")
        gelus = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
        if hf.get("activation_function", "gelu_new") not in gelus:
            raise ValueError(f"unsupported activation_function {hf['activation_function']!r}; "
                             f"expected one of {sorted(gelus)}")
        config = GPTConfig(**{
            "vocab_size": hf["vocab_size"], "block_size": hf["n_positions"],
            "n_layer": hf["n_layer"], "n_head": hf["n_head"], "n_embd": hf["n_embd"],
            "dropout": 0.0, "bias": True, "pre_ln": True, "tie_weights": True,
            "positions": "learned", "gelu": gelus[hf.get("activation_function", "gelu_new")],
            "layer_norm_eps": hf.get("layer_norm_epsilon", 1e-5), **overrides})
        if config.block_size > hf["n_positions"]:
            raise ValueError(f"block_size {config.block_size} is longer than the checkpoint's "
                             f"{hf['n_positions']} positions")
        state = _read_safetensors(directory)
        model = cls(config)
        model.load_state_dict(gpt2_state_dict(state, config))
        return model


_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt2_state_dict(hf_state: dict[str, torch.Tensor], config: GPTConfig
                    ) -> dict[str, torch.Tensor]:
    """A Hugging Face GPT-2 state dict -> this model's: ``Conv1D`` weights transposed, the
    causal-mask buffers dropped, the token table padded to ``padded_vocab_size`` rows, the
    position table cropped to ``block_size``."""
    state = {}
    for name, tensor in hf_state.items():
        key = name if name.startswith(("transformer.", "lm_head.")) else f"transformer.{name}"
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        state[key] = tensor.t().contiguous() if key.endswith(_CONV1D) else tensor
    wte = state["transformer.wte.weight"]
    if wte.shape[0] != config.vocab_size:
        raise ValueError(f"the checkpoint has {wte.shape[0]} token rows but the config says "
                         f"vocab_size = {config.vocab_size}")
    state["transformer.wte.weight"] = pad_vocab_rows(wte, config)
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][: config.block_size]
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def pad_vocab_rows(table: torch.Tensor, config: GPTConfig) -> torch.Tensor:
    """(vocab_size, C) -> (padded_vocab_size, C), the extra rows zero."""
    extra = config.padded_vocab_size - table.shape[0]
    return torch.cat([table, table.new_zeros(extra, table.shape[1])]) if extra else table


def _pretrained_directory(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: "
                                    f"not a Hugging Face model directory")
        return path
    if path.exists() or str(name_or_path).startswith((".", "/", "~")):
        raise FileNotFoundError(f"no model directory at {path}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"{name_or_path!r} is not a local directory, and huggingface_hub "
                                f"is not installed to download it") from None
    try:
        return Path(snapshot_download(str(name_or_path),
                                      allow_patterns=["config.json", "*.safetensors",
                                                      "*.safetensors.index.json"]))
    except Exception as error:
        raise FileNotFoundError(f"{name_or_path!r} is not a local directory and could not be "
                                f"downloaded from the Hugging Face hub: {error}") from None


def _read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single = directory / "model.safetensors"
    if single.is_file():
        return load_file(single)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(directory / shard).items()}
    raise FileNotFoundError(f"{directory} has no model.safetensors (nor a sharded index)")
