"""A decoder-only Transformer language model (Radford et al. 2018, 2019), written like nanoGPT's
``model.py`` with every backward by hand:

    x = wte[ids] + wpe[0:T]                    token and position embeddings, (B, T, C)
    x = h.N-1(... h.1(h.0(x)))                 N blocks (``block.py``), causal self-attention
    logits = ln_f(x) @ wte^T                   final norm; the head is the token table, tied
    loss = cross_entropy(logits, targets)      fused with the log-softmax

Parameter names mirror GPT-2 / nanoGPT so that a PyTorch twin can map the weights one to one:
``wte.weight`` (V, C), ``wpe.weight`` (block_size, C), ``h.{i}.ln_1.gamma`` / ``.beta``,
``h.{i}.attn.w_qkv`` (C, 3C) / ``b_qkv``, ``h.{i}.attn.w_o`` (C, C) / ``b_o``,
``h.{i}.ln_2.gamma`` / ``.beta``, ``h.{i}.mlp.w_fc`` (C, 4C) / ``b_fc``, ``h.{i}.mlp.w_proj``
(4C, C) / ``b_proj``, ``ln_f.gamma`` / ``.beta``, and ``lm_head.w`` (C, V) only when untied.
Weights are stored (in, out), as in GPT-2's checkpoints (``Conv1D``); ``torch.nn.Linear`` holds
the transpose. gamma / beta are LayerNorm's ``weight`` / ``bias``.
Notes: ``phase_05_transformer_numpy/notes/03_gpt.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from phase_01_nn.dropout import Dropout
from phase_01_nn.embedding import Embedding
from phase_01_nn.linear import linear_backward, linear_forward
from phase_01_nn.losses import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from phase_01_nn.module import Module, Sequential
from phase_04_attention.layer_norm import LayerNorm
from phase_05_transformer_numpy.block import Block
from phase_05_transformer_numpy.positional import LearnedPositions, SinusoidalPositions

POSITIONS = ("learned", "sinusoidal")
GELUS = ("none", "tanh")
INITS = ("gpt2", "width")


@dataclass(frozen=True)
class GPTConfig:
    """The architecture. Validated at construction, so a bad value fails before any work."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False
    pre_ln: bool = True
    tie_weights: bool = True
    positions: str = "learned"
    gelu: str = "none"
    init: str = "gpt2"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd = {self.n_embd} is not divisible by n_head = "
                             f"{self.n_head}: each head gets n_embd / n_head dimensions")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.positions not in POSITIONS:
            raise ValueError(f"GPTConfig.positions must be one of {POSITIONS}, "
                             f"got {self.positions!r}")
        if self.gelu not in GELUS:
            raise ValueError(f"GPTConfig.gelu must be one of {GELUS}, got {self.gelu!r}")
        if self.init not in INITS:
            raise ValueError(f"GPTConfig.init must be one of {INITS}, got {self.init!r}")


EMBEDDING_STD = 0.02


def block_init_std(config: GPTConfig) -> float:
    """The standard deviation of the blocks' weight matrices at initialisation.

    ``"gpt2"``: 0.02, GPT-2's and nanoGPT's constant, whatever the width. ``"width"``:
    1 / sqrt(n_embd), so that a matrix reading the (normalised, unit-scale) residual stream gives
    outputs of unit scale: the fan-in rule, Glorot and Bengio 2010's forward condition. At width
    128 that is 0.088, 4.4 times 0.02. Under both, the projections into the residual stream get
    this divided by sqrt(2 n_layer), and the embedding tables (and an untied head) keep
    ``EMBEDDING_STD``. Measured in ``phase_05_transformer_numpy/notes/06_training_run.md``,
    section 6.4.
    """
    if config.init == "gpt2":
        return EMBEDDING_STD
    return 1.0 / math.sqrt(config.n_embd)


class GPT(Module):
    """``forward(ids, targets=None)`` -> ``(logits, loss)``; ``backward()`` from the loss.

    Initialisation as GPT-2 / nanoGPT (``init="gpt2"``): every weight N(0, 0.02^2), the two
    projections that write into the residual stream (``attn.w_o``, ``mlp.w_proj``)
    N(0, (0.02 / sqrt(2 n_layer))^2), so the stream's variance does not grow with depth; biases 0,
    norms gamma = 1, beta = 0. ``init="width"`` replaces the blocks' 0.02 by 1 / sqrt(n_embd)
    (``block_init_std``); the embeddings keep 0.02.
    """

    def __init__(self, config: GPTConfig, *, rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        c = config
        std, block_std = EMBEDDING_STD, block_init_std(c)
        proj_std = block_std / math.sqrt(2 * c.n_layer)
        self.config, self.dtype = config, np.dtype(dtype)
        self.wte = self.add_module("wte", Embedding(c.vocab_size, c.n_embd, rng=rng, std=std,
                                                    dtype=dtype))
        if c.positions == "learned":
            self.wpe = self.add_module("wpe", LearnedPositions(c.block_size, c.n_embd, rng=rng,
                                                               std=std, dtype=dtype))
        else:
            self.wpe = self.add_module("wpe", SinusoidalPositions(c.block_size, c.n_embd,
                                                                  dtype=dtype))
        self.drop = self.add_module("drop", Dropout(c.dropout, rng))
        self.h = self.add_module("h", Sequential(*[
            Block(c.n_embd, c.n_head, rng=rng, pre_ln=c.pre_ln, causal=True, bias=c.bias,
                  dropout=c.dropout, std=block_std, proj_std=proj_std, gelu=c.gelu, dtype=dtype)
            for _ in range(c.n_layer)]))
        self.ln_f = self.add_module("ln_f", LayerNorm(c.n_embd, bias=c.bias, dtype=dtype))
        if not c.tie_weights:
            self.lm_head = self.add_module("lm_head", Module())
            self.lm_head.add_param("w", (std * rng.standard_normal((c.n_embd, c.vocab_size))
                                         ).astype(dtype))
        self._head_cache = self._loss_cache = None

    def head_weight(self) -> np.ndarray:
        """(C, V): the output projection, a transposed view of ``wte.weight`` when tied."""
        if self.config.tie_weights:
            return self.wte.params["weight"].T
        return self.lm_head.params["w"]

    def forward(self, ids, targets=None):
        """ids: (B, T) ints with T <= block_size, targets: (B, T) ints or None
        -> logits (B, T, V) and the mean cross-entropy (a 0-d array) or None."""
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"GPT expects token ids of shape (B, T), got {ids.shape}")
        if ids.shape[1] > self.config.block_size:
            raise ValueError(f"a sequence of {ids.shape[1]} tokens is longer than the context "
                             f"block_size = {self.config.block_size}")
        x = self.wpe.forward(self.wte.forward(ids))
        x = self.ln_f.forward(self.h.forward(self.drop.forward(x)))
        logits, self._head_cache = linear_forward(x, self.head_weight())
        if targets is None:
            self._loss_cache = None
            return logits, None
        loss, self._loss_cache = softmax_cross_entropy_forward(logits, targets=targets)
        return logits, loss

    def backward(self, dloss: float = 1.0) -> None:
        """Accumulate every parameter's gradient of ``dloss * loss`` into ``grads``."""
        if self._loss_cache is None:
            raise RuntimeError("backward() needs a forward with targets first")
        (dlogits,) = softmax_cross_entropy_backward(np.asarray(dloss, self.dtype),
                                                    self.take_cache("_loss_cache"))
        dx, dw_head, _ = linear_backward(dlogits, self.take_cache("_head_cache"))
        if self.config.tie_weights:
            self.wte.grads["weight"] += dw_head.T
        else:
            self.lm_head.grads["w"] += dw_head
        dx = self.drop.backward(self.h.backward(self.ln_f.backward(dx)))
        self.wte.backward(self.wpe.backward(dx))


def generate(model: GPT, ids: np.ndarray, max_new_tokens: int, rng: np.random.Generator, *,
             temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """ids: (B, T0) ints -> (B, T0 + max_new_tokens): each new token drawn from
    softmax(logits / temperature) at the last position (temperature 0: the most likely token),
    restricted to the ``top_k`` most likely when given, the context cropped to the last
    ``block_size`` tokens (no key-value cache: every step reruns the cropped context, which
    costs little at this size)."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got "
                         f"{temperature}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ValueError(f"generate needs a prompt of shape (B, T0) with T0 >= 1, got {ids.shape}")
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        logits, _ = model.forward(ids[:, -model.config.block_size:])
        logits = logits[:, -1].astype(np.float64)
        if temperature == 0:
            drawn = logits.argmax(axis=-1)
            ids = np.concatenate([ids, drawn.astype(ids.dtype)[:, None]], axis=1)
            continue
        logits = logits / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
            logits = np.where(logits < kth, -np.inf, logits)
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        drawn = [rng.choice(probs.shape[-1], p=row) for row in probs]
        ids = np.concatenate([ids, np.array(drawn, dtype=ids.dtype)[:, None]], axis=1)
    model.train(was_training)
    return ids
