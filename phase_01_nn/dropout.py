"""Inverted dropout (Srivastava et al. 2014): zero each unit with probability p at training time
and scale the survivors by 1 / (1 - p), so that evaluation needs no change at all.

The op is pure: the random keep-mask comes in as an argument, made by ``dropout_mask`` from an
explicit ``np.random.Generator``, so a run is reproducible and the gradient check is exact.
"""

import numpy as np

from phase_01_nn.module import Module


def _check_p(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")


def dropout_mask(rng: np.random.Generator, shape, p: float) -> np.ndarray:
    """A boolean keep-mask: True with probability 1 - p."""
    _check_p(p)
    return rng.random(shape) >= p


def dropout_forward(x: np.ndarray, *, mask: np.ndarray, p: float):
    """x: any shape, mask: bool, broadcastable to x -> x * mask / (1 - p)."""
    _check_p(p)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"dropout mask must be boolean, got {mask.dtype}")
    np.broadcast_shapes(mask.shape, x.shape)
    scale = np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    return x * mask * scale, (mask, scale)


def dropout_backward(dout, cache):
    """dx = dout * mask / (1 - p): the same scaling, applied to the gradient."""
    mask, scale = cache
    return (dout * mask * scale,)


class Dropout(Module):
    """Drops units in training mode only; ``rng`` supplies the masks."""

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__()
        _check_p(p)
        self.p, self.rng = p, rng
        self._cache = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._cache = None
            return x
        mask = dropout_mask(self.rng, x.shape, self.p)
        out, self._cache = dropout_forward(x, mask=mask, p=self.p)
        return out

    def backward(self, dout):
        if self._cache is None:
            return dout
        return dropout_backward(dout, self._cache)[0]
