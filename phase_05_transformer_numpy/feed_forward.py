"""The position-wise feed-forward network: the same two-layer MLP applied at every position,
FFN(x) = GELU(x W_fc + b_fc) W_proj + b_proj, with a hidden width of 4C in GPT-2 and 2048 = 4 x 512
in Vaswani et al. (who used ReLU). Attention mixes positions; this is where each position is
transformed on its own, and where two thirds of a GPT block's parameters live.
Notes: ``phase_05_transformer_numpy/notes/02_positions_and_the_block.md``.
"""

from __future__ import annotations

import numpy as np

from phase_00_math.erf import x_normal_cdf_float32, x_normal_cdf_with_backward_float32
from phase_01_nn.activations import gelu_backward, gelu_forward
from phase_01_nn.linear import linear_backward, linear_forward, matmul_rows
from phase_01_nn.module import Module


def feed_forward_forward(x: np.ndarray, w_fc: np.ndarray, b_fc: np.ndarray | None,
                         w_proj: np.ndarray, b_proj: np.ndarray | None, *,
                         approximate: str = "none"):
    """x: (..., C), w_fc: (C, H), b_fc: (H,) or None, w_proj: (H, C), b_proj: (C,) or None
    -> (..., C) = gelu(x w_fc + b_fc) w_proj + b_proj.

    The cache keeps the hidden layer before the GELU and nothing of the GELU: the backward
    runs the GELU's forward again (activation recomputation, Chen et al. 2016, for the cheapest
    op of the block). Holding its output, or its factor Phi(h), from the forward to the backward
    would cost one (..., H) array per block, 12 MiB a layer on phase 6's ``larger`` preset (72
    MiB over its six layers, more than the whole gap to torch's peak); recomputing costs one
    Phi per block in the backward, about 1% of a ``larger`` step."""
    hidden, fc_cache = linear_forward(x, w_fc, b_fc)
    if _fused_gelu(hidden, approximate):
        activated = x_normal_cdf_float32(hidden)
    else:
        activated, _ = gelu_forward(hidden, approximate=approximate)
    out, (_, _, has_b_proj) = linear_forward(activated, w_proj, b_proj)
    return out, (fc_cache, hidden, approximate, (w_proj, has_b_proj))


def feed_forward_backward(dout: np.ndarray, cache):
    """The three backwards in reverse: linear, GELU, linear -> (dx, dw_fc, db_fc, dw_proj,
    db_proj); the GELU's forward is run again first, for its output (the projection's input)
    and its cache.

    float32 with the exact GELU, the case of every GPT here, takes phase 0's fused loops instead
    of phase 1's GELU pair (``_fused_backward``). Phase 1's ``gelu_forward``, ``gelu_backward``
    and ``linear_backward`` serve every other case, and are the reference
    (``tests/test_ops.py`` checks that the two agree); the exercise mode switches the fused path
    off, so that your own versions are the ones that run."""
    fc_cache, hidden, approximate, (w_proj, has_b_proj) = cache
    if _fused_gelu(hidden, approximate):
        dhidden, dw_proj, db_proj = _fused_backward(dout, hidden, w_proj, has_b_proj)
    else:
        activated, gelu_cache = gelu_forward(hidden, approximate=approximate)
        dactivated, dw_proj, db_proj = linear_backward(dout, (activated, w_proj, has_b_proj))
        del activated
        (dhidden,) = gelu_backward(dactivated, gelu_cache)
        del dactivated, gelu_cache
    dx, dw_fc, db_fc = linear_backward(dhidden, fc_cache)
    return dx, dw_fc, db_fc, dw_proj, db_proj


def _fused_backward(dout, hidden, w_proj, has_b_proj):
    """The projection's input gradient needs only its weight, so it comes first; then one loop
    gives the GELU's output (the projection's input, which its weight gradient needs) and
    multiplies that gradient in place by the GELU's derivative, one exponential per element for
    both (``x_normal_cdf_with_backward_float32``); then the projection's weight and bias
    gradients, as ``linear_backward`` takes them."""
    dactivated = matmul_rows(dout, w_proj.T)
    activated = x_normal_cdf_with_backward_float32(hidden, dactivated)  # dactivated -> dhidden
    rows = dout.reshape(-1, dout.shape[-1])
    dw_proj = activated.reshape(-1, activated.shape[-1]).T @ rows
    db_proj = rows.sum(axis=0, dtype=np.float64).astype(rows.dtype) if has_b_proj else None
    return dactivated, dw_proj, db_proj


def _fused_gelu(hidden: np.ndarray, approximate: str) -> bool:
    return approximate == "none" and hidden.dtype == np.float32 and FUSED


FUSED = True  # False: phase 1's GELU pair everywhere


class FeedForward(Module):
    """Params ``w_fc`` (C, H), ``w_proj`` (H, C) and, with ``bias``, ``b_fc``, ``b_proj``:
    GPT-2's ``mlp.c_fc`` and ``mlp.c_proj``. Weights N(0, std^2), the projection's N(0,
    proj_std^2) (GPT-2 scales it down by sqrt(2 n_layer)); biases zero."""

    def __init__(self, dim: int, hidden: int, *, rng: np.random.Generator, bias: bool = True,
                 std: float = 0.02, proj_std: float = 0.02, approximate: str = "none",
                 dtype=np.float32) -> None:
        super().__init__()
        gelu_forward(np.zeros(1), approximate=approximate)  # rejects an unknown name now
        self.add_param("w_fc", (std * rng.standard_normal((dim, hidden))).astype(dtype))
        self.add_param("w_proj", (proj_std * rng.standard_normal((hidden, dim))).astype(dtype))
        if bias:
            self.add_param("b_fc", np.zeros(hidden, dtype=dtype))
            self.add_param("b_proj", np.zeros(dim, dtype=dtype))
        self.approximate = approximate
        self._cache = None

    def forward(self, x):
        p = self.params
        out, self._cache = feed_forward_forward(x, p["w_fc"], p.get("b_fc"), p["w_proj"],
                                                p.get("b_proj"), approximate=self.approximate)
        return out

    def backward(self, dout):
        dx, dw_fc, db_fc, dw_proj, db_proj = feed_forward_backward(dout, self.take_cache())
        for name, grad in (("w_fc", dw_fc), ("b_fc", db_fc), ("w_proj", dw_proj),
                           ("b_proj", db_proj)):
            if grad is not None:
                self.grads[name] += grad
        return dx
