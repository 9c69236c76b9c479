"""Layer normalisation (Ba, Kiros and Hinton 2016): normalise each position's feature vector to
zero mean and unit variance, then scale and shift it by learned ``gamma`` and ``beta``.

Unlike batch normalisation it needs no batch statistics, so training and inference are the same
computation and a sequence of any length is normalised position by position.
Derivation of the backward: ``phase_05_transformer_numpy/notes/01_layer_norm.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.module import Module


def layer_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None = None, *,
                       eps: float = 1e-5):
    """x: (..., C), gamma: (C,), beta: (C,) or None -> y: (..., C).

    y = (x - mean) / sqrt(var + eps) * gamma + beta, mean and (biased) var over the last axis.
    """
    if gamma.shape != (x.shape[-1],):
        raise ValueError(f"layer_norm_forward: gamma has shape {gamma.shape}; expected "
                         f"({x.shape[-1]},) for x of shape {x.shape}")
    if beta is not None and beta.shape != gamma.shape:
        raise ValueError(f"layer_norm_forward: beta has shape {beta.shape}; expected "
                         f"{gamma.shape}")
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(variance + np.asarray(eps, dtype=x.dtype))
    xhat = centred * rstd
    y = xhat * gamma
    if beta is not None:
        y += beta
    return y, (xhat, rstd, gamma, beta is not None)


def layer_norm_backward(dout: np.ndarray, cache):
    """With g = dout * gamma: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));
    dgamma = sum(dout * xhat), dbeta = sum(dout), both over every leading dim."""
    xhat, rstd, gamma, has_beta = cache
    g = dout * gamma
    dx = g - g.mean(axis=-1, keepdims=True)
    dx -= xhat * np.mean(g * xhat, axis=-1, keepdims=True)
    dx *= rstd
    flat_dout = dout.reshape(-1, dout.shape[-1])
    dgamma = np.einsum("nc,nc->c", flat_dout, xhat.reshape(flat_dout.shape))
    dbeta = flat_dout.sum(axis=0) if has_beta else None
    return dx, dgamma, dbeta


class LayerNorm(Module):
    """Params ``gamma`` (ones) and, with ``bias``, ``beta`` (zeros), as in ``torch.nn.LayerNorm``
    (whose ``weight`` and ``bias`` they are)."""

    def __init__(self, dim: int, *, bias: bool = True, eps: float = 1e-5,
                 dtype=np.float32) -> None:
        super().__init__()
        self.add_param("gamma", np.ones(dim, dtype=dtype))
        if bias:
            self.add_param("beta", np.zeros(dim, dtype=dtype))
        self.eps = eps
        self._cache = None

    def forward(self, x):
        y, self._cache = layer_norm_forward(x, self.params["gamma"], self.params.get("beta"),
                                            eps=self.eps)
        return y

    def backward(self, dout):
        dx, dgamma, dbeta = layer_norm_backward(dout, self._cache)
        self.grads["gamma"] += dgamma
        if dbeta is not None:
            self.grads["beta"] += dbeta
        return dx
