"""A LLaMA-style model in PyTorch, in one file: phase 7's GPT with the 2023 parts swapped in.

    x = wte[ids]                                   token embeddings only; no position table
    x = x + attn(rmsnorm(x))                       RoPE on q and k, grouped-query attention,
    x = x + mlp(rmsnorm(x))                        optionally a sliding window; SwiGLU MLP
    logits = rmsnorm(x) @ lm_head^T                the head tied to wte or its own matrix

Touvron et al. 2023 (LLaMA) put RMSNorm (Zhang & Sennrich 2019), rotary positions (Su et al.
2021) and SwiGLU (Shazeer 2020) together; LLaMA 2 and Mistral (Jiang et al. 2023) added
grouped-query attention (Ainslie et al. 2023), Mistral also a sliding window. Names follow
nanoGPT's containers (``transformer.h.0``) and Hugging Face's projections (``q_proj``), so
``from_hf`` is a renaming with no transposes (``hf_state_dict``).

Generation keeps a key-value cache (``KVCache``): one preallocated buffer per layer, filled by a
prefill of any chunk size and then one token per step; with a sliding window it is a ring of
``sliding_window`` slots, so its memory does not grow with the text.
Notes: ``phase_09_modern/notes/10_llama.md`` and ``11_kv_cache.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from phase_05_transformer_numpy.gpt import INITS, block_init_std
from phase_06_torch_parity.gpt_twin import redraw_block_weights
from phase_07_gpt.generate import choose_next
from phase_07_gpt.model import _read_safetensors
from phase_09_modern.models.kv_cache import KVCache, LayerCache, attention_mask
from phase_09_modern.models.llama_checkpoints import config_from_hf, hf_state_dict


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class LlamaConfig:
    """``n_kv_head`` key/value heads shared by ``n_head`` query heads (``n_head`` for
    multi-head, 1 for multi-query); ``head_dim`` defaults to ``n_embd // n_head``;
    ``sliding_window`` = W lets a token see itself and the W - 1 before it (None: all)."""

    vocab_size: int = 32000
    block_size: int = 2048  # the longest sequence RoPE's table covers
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int = 4
    n_embd: int = 128
    d_ff: int = 344  # SwiGLU's hidden width; 3 n_embd d_ff weights per MLP
    head_dim: int | None = None
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    sliding_window: int | None = None
    tie_weights: bool = False
    bias: bool = False  # biases on q, k, v, o (Hugging Face's attention_bias)
    mlp_bias: bool = False
    dropout: float = 0.0
    init: str = "gpt2"  # or "width": the rule of phase 5's GPTConfig.init

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd",
                     "d_ff"):
            if not _positive_int(getattr(self, name)):
                raise ValueError(f"LlamaConfig.{name} must be a positive integer, "
                                 f"got {getattr(self, name)!r}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head = {self.n_head} is not divisible by n_kv_head = "
                             f"{self.n_kv_head}: each key/value head serves a whole group of "
                             f"query heads")
        if self.head_dim is None:
            if self.n_embd % self.n_head:
                raise ValueError(f"n_embd = {self.n_embd} is not divisible by n_head = "
                                 f"{self.n_head}; choose another width or give head_dim")
            object.__setattr__(self, "head_dim", self.n_embd // self.n_head)
        if not _positive_int(self.head_dim) or self.head_dim % 2:
            raise ValueError(f"head_dim must be a positive even integer (RoPE rotates pairs), "
                             f"got {self.head_dim!r}")
        if self.init not in INITS:
            raise ValueError(f"LlamaConfig.init must be one of {INITS}, got {self.init!r}")
        if self.sliding_window is not None and not _positive_int(self.sliding_window):
            raise ValueError(f"sliding_window must be None or a positive integer, "
                             f"got {self.sliding_window!r}")
        if not self.rope_theta > 0:
            raise ValueError(f"rope_theta must be > 0, got {self.rope_theta}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019): LayerNorm without the mean
    and the bias. Computed in float32 whatever the input dtype, as Hugging Face does."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_cache(n_positions: int, head_dim: int, theta: float) -> tuple[torch.Tensor, ...]:
    """cos, sin: (n_positions, head_dim) float32, angle p / theta^(2i / head_dim) for the pair
    i, the half-table repeated twice (the rotate-half layout: pair i is columns i and
    i + head_dim / 2)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
    angles = torch.outer(torch.arange(n_positions, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last axis."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, H, T, D), cos and sin: (T, D); each pair turned by its position's angle."""
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    """Grouped-query attention: ``n_head`` query heads, ``n_kv_head`` key/value heads, query
    head h reading key/value head h // (n_head / n_kv_head) (Ainslie et al. 2023)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = (config.n_head, config.n_kv_head,
                                                      config.head_dim)
        self.window = config.sliding_window
        self.dropout = config.dropout
        q_dim, kv_dim = config.n_head * config.head_dim, config.n_kv_head * config.head_dim
        self.q_proj = nn.Linear(config.n_embd, q_dim, bias=config.bias)
        self.k_proj = nn.Linear(config.n_embd, kv_dim, bias=config.bias)
        self.v_proj = nn.Linear(config.n_embd, kv_dim, bias=config.bias)
        self.o_proj = nn.Linear(q_dim, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                positions: torch.Tensor, cache: LayerCache | None = None,
                need_weights: bool = False):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        key_pos = positions
        if cache is not None:
            k, v, key_pos = cache.update(k, v, positions)
        plain_causal = cache is None and self.window is None
        mask = None if plain_causal else attention_mask(positions, key_pos, self.window)
        weights = None
        if need_weights:
            group = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            if mask is None:
                mask = attention_mask(positions, key_pos, None)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = F.dropout(weights, self.dropout, self.training) @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=plain_causal, enable_gqa=True,
                dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim)
        return self.resid_dropout(self.o_proj(y)), weights


class MLP(nn.Module):
    """SwiGLU (Shazeer 2020): down(silu(gate(x)) * up(x)), C -> d_ff -> C."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.n_embd, config.d_ff, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.n_embd, config.d_ff, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.d_ff, config.n_embd, bias=config.mlp_bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class Block(nn.Module):
    """Pre-norm: x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = Attention(config)
        self.ln_2 = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, positions, cache=None, need_weights=False):
        a, weights = self.attn(self.ln_1(x), cos, sin, positions, cache, need_weights)
        x = x + a
        return x + self.mlp(self.ln_2(x)), weights


class LlamaModel(nn.Module):
    """The trunk: ids (B, T) -> the final-normed hidden states (B, T, C). RoPE's cos and sin
    tables are buffers computed once for ``block_size`` positions and not saved."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = RMSNorm(config.n_embd, config.norm_eps)
        cos, sin = rope_cache(config.block_size, config.head_dim, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                need_weights: bool = False):
        """Returns (hidden (B, T, C), the residual stream after each block, the attention
        weights of each block (None unless ``need_weights``)). With a cache, ``idx`` holds the
        tokens after the ``cache.length`` already seen, and the cache advances by T."""
        if idx.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(idx.shape)}")
        start = cache.length if cache is not None else 0
        end = start + idx.size(1)
        limit = cache.max_len if cache is not None else self.config.block_size
        if end > limit:
            raise ValueError(f"positions up to {end} exceed the "
                             f"{'cache' if cache is not None else 'context'} of {limit} tokens")
        positions = torch.arange(start, end, device=idx.device)
        cos, sin = self.rope_cos[start:end].to(self.wte.weight.dtype), \
            self.rope_sin[start:end].to(self.wte.weight.dtype)
        x = self.drop(self.wte(idx))
        streams, maps = [], []
        for i, block in enumerate(self.h):
            layer_cache = cache.layers[i] if cache is not None else None
            x, weights = block(x, cos, sin, positions, layer_cache, need_weights)
            streams.append(x)
            maps.append(weights)
        if cache is not None:
            cache.length = end
        return self.ln_f(x), streams, maps


class Llama(nn.Module):
    """``forward(idx, targets=None, cache=None)`` -> ``(logits (B, T, vocab_size), mean loss
    or None)``, the interface of phase 7's GPT, so phase 7's trainer can train it.

    Initialisation as phase 7's GPT (GPT-2's): weights N(0, 0.02^2), the two projections that
    write into the residual stream (``o_proj``, ``down_proj``) N(0, (0.02 / sqrt(2 n_layer))^2),
    norm gains 1. ``init="width"`` then redraws the layers' matrices with 1 / sqrt(n_embd) in
    place of 0.02, as phase 7's GPT does (phase 5's ``block_init_std``)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = LlamaModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, mean=0.0, std=residual_std)
        block_std = block_init_std(self.config)
        if block_std != 0.02:
            redraw_block_weights(self, self.config.n_layer, block_std,
                                 ("o_proj.weight", "down_proj.weight"))

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters, a tied head counted once. There is no position table, so
        ``non_embedding`` (kept for phase 7's interface) changes nothing."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None):
        x, _, _ = self.transformer(idx, cache)
        logits = self.lm_head(x)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def inspect(self, idx: torch.Tensor) -> dict:
        """As phase 7's ``GPT.inspect``: ``logits``, ``streams`` (B, T, C) per block and
        ``attention`` (B, n_head, T, T) per block, from the plain attention path."""
        x, streams, maps = self.transformer(idx, need_weights=True)
        return {"logits": self.lm_head(x), "streams": streams, "attention": maps}

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None, use_cache: bool = True,
                 prefill_chunk: int | None = None, return_logprobs: bool = False):
        """ids: (B, T0) -> (B, T0 + max_new_tokens); temperature 0 is greedy. With the cache
        the prompt is prefilled (in chunks of ``prefill_chunk`` tokens if given) and each new
        token costs one position; without it each step reruns the whole sequence. With
        ``return_logprobs`` also (B, max_new_tokens): log p of each chosen token under the
        model's (unfiltered, temperature 1) distribution."""
        _check_generation(self.config, ids, max_new_tokens, temperature, prefill_chunk)
        generator = torch.Generator(device=ids.device)
        generator.manual_seed(torch.seed() if seed is None else seed)
        was_training = self.training
        self.eval()
        total = ids.size(1) + max_new_tokens
        cache = KVCache(self.config, ids.size(0), total, ids.device,
                        self.lm_head.weight.dtype) if use_cache else None
        chosen = []
        step_input = ids
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = self(ids)
            elif cache.length == 0 and prefill_chunk:
                logits = torch.cat([self(part, cache=cache)[0]
                                    for part in step_input.split(prefill_chunk, dim=1)], dim=1)
            else:
                logits, _ = self(step_input, cache=cache)
            logits = logits[:, -1, :].float()
            nxt = choose_next(logits, temperature, top_k, top_p, generator)
            chosen.append(logits.log_softmax(-1).gather(1, nxt[:, None]))
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            step_input = nxt[:, None]
        self.train(was_training)
        if not return_logprobs:
            return ids
        logprobs = torch.cat(chosen, dim=1) if chosen else ids.new_zeros(ids.size(0), 0).float()
        return ids, logprobs

    @classmethod
    def from_hf(cls, model_or_path, **overrides) -> Llama:
        """A Hugging Face ``LlamaForCausalLM`` or ``MistralForCausalLM``, as a model object or
        a local directory (``config.json`` and safetensors). ``overrides`` may set ``dropout``
        or a shorter ``block_size``."""
        if isinstance(model_or_path, str | Path):
            directory = Path(model_or_path)
            if not (directory / "config.json").is_file():
                raise FileNotFoundError(f"{directory} has no config.json: not a Hugging Face "
                                        f"model directory")
            hf = json.loads((directory / "config.json").read_text(encoding="utf-8"))
            state = _read_safetensors(directory)
        else:
            hf, state = model_or_path.config.to_dict(), model_or_path.state_dict()
        config = LlamaConfig(**{**config_from_hf(hf), **overrides})
        model = cls(config)
        model.load_state_dict(hf_state_dict(state, config))
        return model


def _check_generation(config: LlamaConfig, ids: torch.Tensor, max_new_tokens: int,
                      temperature: float, prefill_chunk: int | None) -> None:
    if ids.dim() != 2 or ids.size(1) < 1:
        raise ValueError(f"generate needs a prompt of shape (B, T0) with T0 >= 1, "
                         f"got {tuple(ids.shape)}")
    if ids.min() < 0 or ids.max() >= config.vocab_size:
        raise ValueError(f"prompt ids must be in [0, {config.vocab_size}), got ids from "
                         f"{int(ids.min())} to {int(ids.max())}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if ids.size(1) + max_new_tokens > config.block_size:
        raise ValueError(f"{ids.size(1)} prompt tokens + {max_new_tokens} new ones exceed "
                         f"block_size = {config.block_size}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if prefill_chunk is not None and not _positive_int(prefill_chunk):
        raise ValueError(f"prefill_chunk must be a positive integer or None, "
                         f"got {prefill_chunk!r}")
