"""The position-wise feed-forward network of Vaswani et al. (2017): the same two-layer MLP
applied to every token on its own, FFN(x) = relu(x W_1 + b_1) W_2 + b_2, with a hidden width of
4C. Attention moves information between tokens; this is where each token computes on what it
gathered. Rung 4 of the ladder adds it. Notes: ``phase_04_attention/notes/04_the_ladder.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.initialization import kaiming_uniform, xavier_uniform
from phase_01_nn.linear import linear_backward, linear_forward
from phase_01_nn.module import Module


def feed_forward_forward(x: np.ndarray, w_1: np.ndarray, b_1: np.ndarray | None,
                         w_2: np.ndarray, b_2: np.ndarray | None):
    """x: (..., C), w_1: (C, F), b_1: (F,), w_2: (F, C), b_2: (C,) -> y: (..., C),
    y = relu(x W_1 + b_1) W_2 + b_2 (biases may be None)."""
    a, first = linear_forward(x, w_1, b_1)
    positive = a > 0
    h = a * positive
    y, second = linear_forward(h, w_2, b_2)
    return y, (first, positive, second)


def feed_forward_backward(dout: np.ndarray, cache):
    """-> (dx, dw_1, db_1, dw_2, db_2): back through the second linear, the ReLU's 0/1 mask and
    the first linear."""
    first, positive, second = cache
    dh, dw_2, db_2 = linear_backward(dout, second)
    dx, dw_1, db_1 = linear_backward(dh * positive, first)
    return dx, dw_1, db_1, dw_2, db_2


class FeedForward(Module):
    """``w_1`` (C, F), ``b_1`` (F,), ``w_2`` (F, C), ``b_2`` (C,); F defaults to 4C."""

    def __init__(self, n_embd: int, hidden: int | None = None, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__()
        hidden = 4 * n_embd if hidden is None else hidden
        self.add_param("w_1", kaiming_uniform(rng, (n_embd, hidden), "relu", dtype=dtype))
        self.add_param("b_1", np.zeros(hidden, dtype=dtype))
        self.add_param("w_2", xavier_uniform(rng, (hidden, n_embd), dtype=dtype))
        self.add_param("b_2", np.zeros(n_embd, dtype=dtype))
        self._cache = None

    def forward(self, x):
        p = self.params
        y, self._cache = feed_forward_forward(x, p["w_1"], p["b_1"], p["w_2"], p["b_2"])
        return y

    def backward(self, dout):
        dx, dw_1, db_1, dw_2, db_2 = feed_forward_backward(dout, self._cache)
        for name, grad in (("w_1", dw_1), ("b_1", db_1), ("w_2", dw_2), ("b_2", db_2)):
            self.grads[name] += grad
        return dx
