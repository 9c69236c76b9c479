"""Layer normalisation (Ba, Kiros and Hinton 2016): normalise each token's features to zero mean
and unit variance, then scale and shift them by learned ``gamma`` and ``beta``.

Unlike batch normalisation the statistics are taken over one token's own C features, so a token
never sees the batch or the other positions: the op is the same in training and at test time,
and it cannot leak the future into a causal model. Rung 6 of the ladder adds it; phase 5 builds
its transformer block on this pair. Derivation: ``phase_04_attention/notes/04_the_ladder.md``;
in full, with its cost: ``phase_05_transformer_numpy/notes/01_layer_norm.md``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from phase_01_nn.module import Module


def _check_layer_norm_args(x: np.ndarray, gamma: np.ndarray | None,
                           beta: np.ndarray | None) -> None:
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"layer_norm_forward: x must be (..., C) with C >= 1, got {x.shape}")
    for name, param in (("gamma", gamma), ("beta", beta)):
        if param is not None and param.shape != (x.shape[-1],):
            raise ValueError(f"layer_norm_forward: {name} has shape {param.shape}; expected "
                             f"({x.shape[-1]},) for x of shape {x.shape}")


def layer_norm_forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, *,
                       eps: float = 1e-5):
    """x: (..., C), gamma, beta: (C,) or None -> y: (..., C).

    y = gamma * (x - mean) / sqrt(var + eps) + beta, mean and (biased) var over the last axis.
    """
    _check_layer_norm_args(x, gamma, beta)
    if FUSED and _fusable(x, gamma, beta):
        return _layer_norm_forward_fused(x, gamma, beta, eps)
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(variance + np.asarray(eps, dtype=x.dtype))
    x_hat = centred * inv_std
    y = x_hat if gamma is None else x_hat * gamma
    if beta is not None:
        y = y + beta if gamma is None else np.add(y, beta, out=y)
    return y, (x_hat, inv_std, gamma, beta is not None)


def layer_norm_backward(dout: np.ndarray, cache):
    """-> (dx, dgamma, dbeta). With g = dout * gamma:
    dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + eps), means over the last axis;
    dgamma = sum of dout * x_hat, dbeta = sum of dout, over every leading axis."""
    x_hat, inv_std, gamma, has_beta = cache
    if isinstance(x_hat, FromOutput) or (FUSED and _fusable(dout, gamma, None)
                                         and x_hat.dtype == np.float32):
        return _layer_norm_backward_fused(dout, x_hat, inv_std, gamma, has_beta)
    g = dout if gamma is None else dout * gamma
    dx = g - g.mean(axis=-1, keepdims=True)
    dx -= x_hat * np.mean(g * x_hat, axis=-1, keepdims=True)
    dx *= inv_std
    rows = dout.reshape(-1, dout.shape[-1])
    dgamma = None if gamma is None else np.einsum("nc,nc->c", rows, x_hat.reshape(rows.shape))
    dbeta = rows.sum(axis=0) if has_beta else None
    return dx, dgamma, dbeta


# The fast path for float32 (what the GPTs train in): each of the two functions above as one
# numba loop over the rows of C features. The NumPy lines make a
# pass over the whole (..., C) array for each step of the formula (subtract the mean, square,
# average, scale, shift: six in the forward, eight in the backward, with their temporaries);
# a row of the loop stays in the processor's fastest cache from its first sum to its last write.
# Sums are taken in float64. The NumPy lines stay the reference: float64 always takes them, and
# ``tests/test_layer_norm_feed_forward.py`` checks that the two agree. ``FUSED = False`` runs
# the NumPy lines everywhere.
FUSED = True


def _fusable(x, gamma, beta) -> bool:
    return x.dtype == np.float32 and all(p is None or p.dtype == np.float32 for p in (gamma, beta))


class FromOutput(NamedTuple):
    """In a cache, in place of x_hat: the layer's output y, from which the backward gets
    x_hat = (y - beta) / gamma. In a transformer the layer after the norm keeps y for its own
    backward (a linear layer's weight gradient is taken against its input), so the norm that
    keeps y instead of x_hat holds no array of its own: 3 MiB a norm on phase 6's ``larger``,
    36 MiB over its twelve (Apex's "memory-efficient" layer norm does the same)."""
    y: np.ndarray
    beta: np.ndarray | None


# Dividing by gamma gives x_hat back to float32's rounding while |beta_j| <= BETA_OVER_GAMMA_MAX
# |gamma_j|: y's rounding error, up to half an ulp of |x_hat gamma| + |beta|, becomes one of
# |x_hat| + |beta / gamma| after the division. A gamma with a 0 (or that ratio) keeps x_hat.
BETA_OVER_GAMMA_MAX = 4.0


def _output_recovers_x_hat(gamma, beta) -> bool:
    if gamma is None:
        return beta is None
    smallest = np.min(np.abs(gamma))
    if not smallest > 0:
        return False
    return beta is None or bool(np.all(np.abs(beta) <= BETA_OVER_GAMMA_MAX * np.abs(gamma)))


def _layer_norm_forward_fused(x, gamma, beta, eps):
    c = x.shape[-1]
    rows = np.ascontiguousarray(x).reshape(-1, c)
    keep_output = _output_recovers_x_hat(gamma, beta)
    y = np.empty(x.shape, np.float32)
    x_hat = y if keep_output else np.empty(x.shape, np.float32)  # y: the kernel skips x_hat
    inv_std = np.empty((*x.shape[:-1], 1), np.float32)
    ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)
    _layer_norm_kernel(rows, ones if gamma is None else gamma, zeros if beta is None else beta,
                       eps, y.reshape(-1, c), x_hat.reshape(-1, c), inv_std.reshape(-1),
                       not keep_output)
    saved = FromOutput(y, beta) if keep_output else x_hat
    return y, (saved, inv_std, gamma, beta is not None)


def _layer_norm_backward_fused(dout, saved, inv_std, gamma, has_beta):
    """(dx, dgamma, dbeta) in one loop over the rows. ``saved`` is x_hat, or the output it comes
    back from (``FromOutput``): either way the loop reads x_hat_j = (s_j - shift_j) * unscale_j,
    with shift 0 and unscale 1 for x_hat itself, beta and 1 / gamma for the output."""
    c = dout.shape[-1]
    ones, zeros = np.ones(c), np.zeros(c)
    if isinstance(saved, FromOutput):
        source = saved.y
        shift = zeros if saved.beta is None else saved.beta.astype(np.float64)
        unscale = 1.0 / gamma.astype(np.float64) if gamma is not None else ones
    else:
        source, shift, unscale = saved, zeros, ones
    dx = np.empty(dout.shape, np.float32)
    dgamma, dbeta = np.zeros(c), np.zeros(c)
    _layer_norm_backward_kernel(
        np.ascontiguousarray(dout).reshape(-1, c), np.ascontiguousarray(source).reshape(-1, c),
        shift, unscale, inv_std.reshape(-1), ones if gamma is None else gamma,
        dx.reshape(-1, c), dgamma, dbeta)
    return (dx, None if gamma is None else dgamma.astype(np.float32),
            dbeta.astype(np.float32) if has_beta else None)


# "reassoc" lets a row's sums run as SIMD partial sums (another order of additions, in float64)
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def _layer_norm_kernel(x, gamma, beta, eps, y, x_hat, inv_std, write_x_hat):
    n, c = x.shape
    for r in range(n):
        total = 0.0
        for j in range(c):
            total += x[r, j]
        mean = total / c
        squares = 0.0
        for j in range(c):
            d = x[r, j] - mean
            squares += d * d
        scale = 1.0 / math.sqrt(squares / c + eps)
        inv_std[r] = scale
        for j in range(c):
            h = (x[r, j] - mean) * scale
            y[r, j] = h * gamma[j] + beta[j]
        if write_x_hat:
            for j in range(c):
                x_hat[r, j] = (x[r, j] - mean) * scale


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def _layer_norm_backward_kernel(dout, source, shift, unscale, inv_std, gamma, dx, dgamma, dbeta):
    n, c = dout.shape
    for r in range(n):
        sum_g, sum_gx = 0.0, 0.0
        for j in range(c):
            h = (np.float64(source[r, j]) - shift[j]) * unscale[j]  # x_hat
            g = np.float64(dout[r, j]) * gamma[j]
            sum_g += g
            sum_gx += g * h
            dgamma[j] += dout[r, j] * h
            dbeta[j] += dout[r, j]
        mean_g, mean_gx = sum_g / c, sum_gx / c
        for j in range(c):
            h = (np.float64(source[r, j]) - shift[j]) * unscale[j]
            g = np.float64(dout[r, j]) * gamma[j]
            dx[r, j] = (g - mean_g - h * mean_gx) * inv_std[r]


class LayerNorm(Module):
    """``gamma`` (C,) starting at ones and, with ``bias``, ``beta`` (C,) at zeros: the ``weight``
    and ``bias`` of ``torch.nn.LayerNorm`` (GPT-2 has the bias; nanoGPT can leave it out)."""

    def __init__(self, n_embd: int, *, bias: bool = True, eps: float = 1e-5,
                 dtype=np.float32) -> None:
        super().__init__()
        self.add_param("gamma", np.ones(n_embd, dtype=dtype))
        if bias:
            self.add_param("beta", np.zeros(n_embd, dtype=dtype))
        self.eps = eps
        self._cache = None

    def forward(self, x):
        y, self._cache = layer_norm_forward(x, self.params["gamma"], self.params.get("beta"),
                                            eps=self.eps)
        return y

    def backward(self, dout):
        dx, dgamma, dbeta = layer_norm_backward(dout, self.take_cache())
        self.grads["gamma"] += dgamma
        if dbeta is not None:
            self.grads["beta"] += dbeta
        return dx
