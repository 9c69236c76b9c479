"""The affine layer y = x W + b, the workhorse of every network in this course.

W is stored (in_features, out_features), as GPT-2's own checkpoints store it, so the forward is
``x @ w`` over any leading dimensions, taken as one product of all of x's rows (``matmul_rows``).
Derivation: ``phase_01_nn/notes/02_backpropagation.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.initialization import kaiming_uniform, xavier_uniform
from phase_01_nn.module import Module


def _check_linear_shapes(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
    if w.ndim != 2:
        raise ValueError(
            f"linear_forward: w must be 2-D (in_features, out_features), got {w.shape}"
        )
    if x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"linear_forward: x has shape {x.shape}, so {x.shape[-1] if x.ndim else 0} features, "
            f"but w of shape {w.shape} expects {w.shape[0]} in its first dimension"
        )
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(
            f"linear_forward: b has shape {b.shape}; expected ({w.shape[1]},) to match w {w.shape}"
        )


def matmul_rows(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a @ w`` for ``a`` of shape (..., K) and a 2-D ``w`` (K, M): one matrix product of all of
    a's rows, (N, K) @ (K, M) with N the product of the leading dimensions.

    For a 3-D ``a`` (B, T, K), ``a @ w`` gives the same numbers, but NumPy's matmul makes it B
    BLAS calls of (T, K) @ (K, M), each of which packs ``w`` again and runs at a smaller
    matrix's speed. One call on the (B * T, K) rows was 15-20% faster for phase 6's ``larger``
    preset (T = 256) and 20-50% for ``shakespeare-char`` (T = 64) on one thread
    (``phase_06_torch_parity/notes/03_speed.md``, sixth session). A contiguous ``a`` (every
    activation here) is reshaped without a copy."""
    if a.ndim <= 2:
        return a @ w
    return (a.reshape(-1, a.shape[-1]) @ w).reshape(*a.shape[:-1], w.shape[-1])


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None):
    """x: (..., D), w: (D, M), b: (M,) or None -> y: (..., M), y = x @ w + b."""
    _check_linear_shapes(x, w, b)
    y = matmul_rows(x, w)
    if b is not None:
        y = y + b
    return y, (x, w, b is not None)


def linear_backward(dout: np.ndarray, cache):
    """dx = dout W^T; dW = x^T dout (summed over all leading dims); db = sum of dout."""
    x, w, has_bias = cache
    dx = matmul_rows(dout, w.T)
    x2 = x.reshape(-1, x.shape[-1])
    d2 = dout.reshape(-1, dout.shape[-1])
    dw = x2.T @ d2
    # db sums over every row: accumulated in float64 (a few numbers), since in float32 a sum whose
    # terms nearly cancel loses digits that torch's reduction keeps (a float32 parity draw of
    # phase 4's feed-forward lost 1.2e-4 of b_2 that way, against torch's 8e-6).
    db = d2.sum(axis=0, dtype=np.float64).astype(d2.dtype) if has_bias else None
    return dx, dw, db


class Linear(Module):
    """A linear layer with its own W (and b). ``init`` is "kaiming" (ReLU nets) or "xavier"."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        rng: np.random.Generator,
        init: str = "kaiming",
        nonlinearity: str = "relu",
        dtype=np.float32,
    ) -> None:
        super().__init__()
        shape = (in_features, out_features)
        if init == "kaiming":
            w = kaiming_uniform(rng, shape, nonlinearity, dtype=dtype)
        elif init == "xavier":
            w = xavier_uniform(rng, shape, dtype=dtype)
        else:
            raise ValueError(f"unknown init {init!r}; choose 'kaiming' or 'xavier'")
        self.add_param("w", w)
        if bias:
            self.add_param("b", np.zeros(out_features, dtype=dtype))
        self._cache = None

    def forward(self, x):
        y, self._cache = linear_forward(x, self.params["w"], self.params.get("b"))
        return y

    def backward(self, dout):
        dx, dw, db = linear_backward(dout, self._cache)
        self.grads["w"] += dw
        if db is not None:
            self.grads["b"] += db
        return dx
