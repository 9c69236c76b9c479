"""The Transformer block: attention then feed-forward, each wrapped in a residual connection and a
layer norm, with the norm either inside the branch (Pre-LN) or after the sum (Post-LN):

    Pre-LN  (GPT-2, nanoGPT):       x = x + attn(ln_1(x));     x = x + mlp(ln_2(x))
    Post-LN (Vaswani et al. 2017):  x = ln_1(x + attn(x));     x = ln_2(x + mlp(x))

Pre-LN leaves an identity path from the embeddings to the final norm (the residual stream); Post-LN
puts a norm across it after every branch, which is why it needs a learning-rate warmup (Xiong et
al. 2020). Dropout, when on, is applied to each branch's output before the sum.
Notes: ``phase_05_transformer_numpy/notes/02_positions_and_the_block.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.dropout import Dropout
from phase_01_nn.module import Module
from phase_04_attention.attention import MultiHeadSelfAttention
from phase_04_attention.layer_norm import LayerNorm
from phase_05_transformer_numpy.feed_forward import FeedForward


class Block(Module):
    """One GPT block, (B, T, C) -> (B, T, C): modules ``ln_1``, ``attn``, ``ln_2``, ``mlp``.

    ``pre_ln`` chooses where the norms sit (module docstring). ``causal`` masks attention to the
    past (a decoder); ``dropout`` is the residual dropout on both branches, drawn from ``rng``;
    ``hidden`` is the feed-forward width (4C by default). ``forward(x, mask)`` passes ``mask`` to
    the attention (a padding mask; see phase 4).
    """

    def __init__(self, dim: int, n_head: int, *, rng: np.random.Generator, pre_ln: bool = True,
                 causal: bool = True, bias: bool = True, dropout: float = 0.0,
                 std: float = 0.02, proj_std: float = 0.02, gelu: str = "none",
                 hidden: int | None = None, dtype=np.float32) -> None:
        super().__init__()
        self.ln_1 = self.add_module("ln_1", LayerNorm(dim, bias=bias, dtype=dtype))
        self.attn = self.add_module("attn", MultiHeadSelfAttention(
            dim, n_head, rng=rng, causal=causal, bias=bias, std=std, proj_std=proj_std,
            dtype=dtype))
        self.ln_2 = self.add_module("ln_2", LayerNorm(dim, bias=bias, dtype=dtype))
        self.mlp = self.add_module("mlp", FeedForward(
            dim, 4 * dim if hidden is None else hidden, rng=rng, bias=bias, std=std,
            proj_std=proj_std, approximate=gelu, dtype=dtype))
        self.drop_attn = self.add_module("drop_attn", Dropout(dropout, rng))
        self.drop_mlp = self.add_module("drop_mlp", Dropout(dropout, rng))
        self.pre_ln = pre_ln

    def forward(self, x, mask=None):
        if self.pre_ln:
            x = x + self.drop_attn.forward(self.attn.forward(self.ln_1.forward(x), mask))
            return x + self.drop_mlp.forward(self.mlp.forward(self.ln_2.forward(x)))
        x = self.ln_1.forward(x + self.drop_attn.forward(self.attn.forward(x, mask)))
        return self.ln_2.forward(x + self.drop_mlp.forward(self.mlp.forward(x)))

    def backward(self, dout):
        """The residual sum copies the gradient to both of its inputs: the branch and the skip."""
        if self.pre_ln:
            dx = dout + self.ln_2.backward(self.mlp.backward(self.drop_mlp.backward(dout)))
            return dx + self.ln_1.backward(self.attn.backward(self.drop_attn.backward(dx)))
        dsum = self.ln_2.backward(dout)
        dx = dsum + self.mlp.backward(self.drop_mlp.backward(dsum))
        dsum = self.ln_1.backward(dx)
        return dsum + self.attn.backward(self.drop_attn.backward(dsum))
