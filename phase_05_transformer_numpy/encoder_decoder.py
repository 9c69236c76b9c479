"""The original encoder-decoder Transformer (Vaswani et al. 2017), every backward by hand.

    memory = Encoder(E[src] sqrt(d) + PE)            N blocks: self-attention (no mask), FFN
    y = Decoder(E[tgt_in] sqrt(d) + PE, memory)      N layers: causal self-attention,
                                                     cross-attention to memory, FFN
    logits = y E^T                                   one table E for source, target and output
    loss = label-smoothed cross-entropy(logits, tgt_out)

As in the paper: sinusoidal positions, embeddings scaled by sqrt(d_model) and shared three ways,
Post-LN by default (``pre_ln=True`` switches every sublayer, and adds a final norm after each
stack), residual dropout. The feed-forward uses GELU where the paper used ReLU (one FFN op for
the whole phase). The memory's gradient is the sum of what every decoder layer's cross-attention
sends back, and it enters the encoder's backward at its top.
Notes: ``phase_05_transformer_numpy/notes/04_encoder_decoder.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from phase_01_nn.dropout import Dropout
from phase_01_nn.embedding import embedding_backward, embedding_forward
from phase_01_nn.linear import linear_backward, linear_forward
from phase_01_nn.module import Module, Sequential
from phase_04_attention.attention import MultiHeadSelfAttention
from phase_04_attention.layer_norm import LayerNorm
from phase_05_transformer_numpy.block import Block
from phase_05_transformer_numpy.cross_attention import CrossAttention
from phase_05_transformer_numpy.feed_forward import FeedForward
from phase_05_transformer_numpy.label_smoothing import (
    label_smoothing_cross_entropy_backward,
    label_smoothing_cross_entropy_forward,
)
from phase_05_transformer_numpy.positional import (
    positional_encoding_forward,
    sinusoidal_table,
)


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 11
    max_len: int = 16
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    d_ff: int = 256
    dropout: float = 0.0
    pre_ln: bool = False
    smoothing: float = 0.1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "n_layer", "n_head", "d_model", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TransformerConfig.{name} must be a positive integer, "
                                 f"got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"TransformerConfig.d_model = {self.d_model} is not divisible by "
                             f"n_head = {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"TransformerConfig.smoothing must be in [0, 1), "
                             f"got {self.smoothing}")


class DecoderLayer(Module):
    """Causal self-attention, cross-attention to the memory, feed-forward: modules ``ln_1``,
    ``self_attn``, ``ln_2``, ``cross_attn``, ``ln_3``, ``mlp``. ``backward`` -> (dx, dmemory)."""

    def __init__(self, dim: int, n_head: int, d_ff: int, *, rng: np.random.Generator,
                 pre_ln: bool, dropout: float, dtype=np.float32) -> None:
        super().__init__()
        std = 1.0 / math.sqrt(dim)
        self.ln_1 = self.add_module("ln_1", LayerNorm(dim, dtype=dtype))
        self.self_attn = self.add_module("self_attn", MultiHeadSelfAttention(
            dim, n_head, rng=rng, causal=True, std=std, dtype=dtype))
        self.ln_2 = self.add_module("ln_2", LayerNorm(dim, dtype=dtype))
        self.cross_attn = self.add_module("cross_attn", CrossAttention(
            dim, n_head, rng=rng, std=std, proj_std=std, dtype=dtype))
        self.ln_3 = self.add_module("ln_3", LayerNorm(dim, dtype=dtype))
        self.mlp = self.add_module("mlp", FeedForward(
            dim, d_ff, rng=rng, std=std, proj_std=1.0 / math.sqrt(d_ff), dtype=dtype))
        self.drops = [self.add_module(f"drop_{i}", Dropout(dropout, rng)) for i in range(3)]
        self.pre_ln = pre_ln

    def forward(self, x, memory, mask=None):
        d1, d2, d3 = self.drops
        if self.pre_ln:
            x = x + d1.forward(self.self_attn.forward(self.ln_1.forward(x)))
            x = x + d2.forward(self.cross_attn.forward(self.ln_2.forward(x), memory, mask))
            return x + d3.forward(self.mlp.forward(self.ln_3.forward(x)))
        x = self.ln_1.forward(x + d1.forward(self.self_attn.forward(x)))
        x = self.ln_2.forward(x + d2.forward(self.cross_attn.forward(x, memory, mask)))
        return self.ln_3.forward(x + d3.forward(self.mlp.forward(x)))

    def backward(self, dout):
        d1, d2, d3 = self.drops
        if self.pre_ln:
            dx = dout + self.ln_3.backward(self.mlp.backward(d3.backward(dout)))
            dq, dmemory = self.cross_attn.backward(d2.backward(dx))
            dx = dx + self.ln_2.backward(dq)
            return dx + self.ln_1.backward(self.self_attn.backward(d1.backward(dx))), dmemory
        dsum = self.ln_3.backward(dout)
        dx = dsum + self.mlp.backward(d3.backward(dsum))
        dsum = self.ln_2.backward(dx)
        dq, dmemory = self.cross_attn.backward(d2.backward(dsum))
        dsum = self.ln_1.backward(dsum + dq)
        return dsum + self.self_attn.backward(d1.backward(dsum)), dmemory


class Transformer(Module):
    """``forward(src, tgt_in, targets=None, src_mask=None)`` -> (logits, loss);
    ``backward()`` from the loss. src: (B, S), tgt_in, targets: (B, T) ints.
    ``src_mask``: bool, broadcastable to (B, H, S, S) and (B, H, T, S), True where a source
    position may be attended (a padding mask is (B, 1, 1, S)).

    Parameters: ``embed.weight`` (V, d), ``encoder.{i}.*`` (a ``Block`` each, non-causal),
    ``decoder.{i}.*`` and, with ``pre_ln``, ``ln_enc``, ``ln_dec``. Weights start N(0, 1/fan_in)
    (the embedding N(0, 1/d), so that E sqrt(d) has unit variance), biases 0.
    """

    def __init__(self, config: TransformerConfig, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__()
        c = config
        self.config, self.dtype = c, np.dtype(dtype)
        std = 1.0 / math.sqrt(c.d_model)
        self.embed = self.add_module("embed", Module())
        self.embed.add_param("weight", (std * rng.standard_normal((c.vocab_size, c.d_model))
                                        ).astype(dtype))
        self.add_buffer("positions", sinusoidal_table(c.max_len, c.d_model, dtype=dtype))
        self.drop_src = self.add_module("drop_src", Dropout(c.dropout, rng))
        self.drop_tgt = self.add_module("drop_tgt", Dropout(c.dropout, rng))
        self.encoder = self.add_module("encoder", Sequential(*[
            Block(c.d_model, c.n_head, rng=rng, pre_ln=c.pre_ln, causal=False, bias=True,
                  dropout=c.dropout, std=std, proj_std=std, hidden=c.d_ff, dtype=dtype)
            for _ in range(c.n_layer)]))
        self.decoder = self.add_module("decoder", Sequential(*[
            DecoderLayer(c.d_model, c.n_head, c.d_ff, rng=rng, pre_ln=c.pre_ln,
                         dropout=c.dropout, dtype=dtype) for _ in range(c.n_layer)]))
        if c.pre_ln:
            self.ln_enc = self.add_module("ln_enc", LayerNorm(c.d_model, dtype=dtype))
            self.ln_dec = self.add_module("ln_dec", LayerNorm(c.d_model, dtype=dtype))
        self._caches: dict = {}

    def _embed(self, ids, name: str):
        """E[ids] sqrt(d) + PE[0:T], with the embedding's cache kept under ``name``."""
        if np.asarray(ids).ndim != 2:
            raise ValueError(f"{name} ids must have shape (B, T), got {np.shape(ids)}")
        x, self._caches[name] = embedding_forward(self.embed.params["weight"], ids=ids)
        x *= self.dtype.type(math.sqrt(self.config.d_model))
        x, _ = positional_encoding_forward(x, self.buffers["positions"])
        return x

    def encode(self, src, src_mask=None):
        """(B, S) ids -> memory (B, S, d)."""
        x = self.drop_src.forward(self._embed(src, "src"))
        for block in self.encoder.modules.values():
            x = block.forward(x, src_mask)
        return self.ln_enc.forward(x) if self.config.pre_ln else x

    def decode(self, tgt_in, memory, src_mask=None):
        """(B, T) ids and the memory -> logits (B, T, V)."""
        y = self.drop_tgt.forward(self._embed(tgt_in, "tgt"))
        for layer in self.decoder.modules.values():
            y = layer.forward(y, memory, src_mask)
        if self.config.pre_ln:
            y = self.ln_dec.forward(y)
        logits, self._caches["head"] = linear_forward(y, self.embed.params["weight"].T)
        return logits

    def forward(self, src, tgt_in, targets=None, src_mask=None):
        logits = self.decode(tgt_in, self.encode(src, src_mask), src_mask)
        if targets is None:
            self._caches["loss"] = None
            return logits, None
        loss, self._caches["loss"] = label_smoothing_cross_entropy_forward(
            logits, targets=targets, smoothing=self.config.smoothing)
        return logits, loss

    def backward(self, dloss: float = 1.0) -> None:
        if self._caches.get("loss") is None:
            raise RuntimeError("backward() needs a forward with targets first")
        scale = self.dtype.type(math.sqrt(self.config.d_model))
        dweight = self.embed.grads["weight"]
        (dlogits,) = label_smoothing_cross_entropy_backward(np.asarray(dloss, self.dtype),
                                                            self._caches["loss"])
        dy, dw_head, _ = linear_backward(dlogits, self._caches["head"])
        dweight += dw_head.T
        if self.config.pre_ln:
            dy = self.ln_dec.backward(dy)
        dmemory = 0
        for layer in reversed(self.decoder.modules.values()):
            dy, dmem = layer.backward(dy)
            dmemory = dmemory + dmem
        dweight += embedding_backward(self.drop_tgt.backward(dy) * scale, self._caches["tgt"])[0]
        if self.config.pre_ln:
            dmemory = self.ln_enc.backward(dmemory)
        dx = self.encoder.backward(dmemory)
        dweight += embedding_backward(self.drop_src.backward(dx) * scale, self._caches["src"])[0]


def greedy_decode(model: Transformer, src: np.ndarray, length: int, *, bos: int,
                  src_mask=None) -> np.ndarray:
    """(B, S) -> (B, length): encode once, then feed back the argmax token by token, starting
    from ``bos``. The loop is over output positions, as autoregression requires."""
    was_training = model.training
    model.eval()
    memory = model.encode(src, src_mask)
    ys = np.full((len(src), 1), bos, dtype=np.int64)
    for _ in range(length):
        logits = model.decode(ys, memory, src_mask)
        ys = np.concatenate([ys, logits[:, -1].argmax(axis=-1)[:, None]], axis=1)
    model.train(was_training)
    return ys[:, 1:]
