"""Batch normalisation (Ioffe and Szegedy 2015) over the last (feature) axis.

Training mode normalises with the batch's own mean and (biased) variance, taken over every leading
axis, and the module keeps running averages; inference mode uses those running averages, which
makes the layer a fixed affine map. Derivation: ``phase_01_nn/notes/04_regularisation.md``.
"""

from typing import NamedTuple

import numpy as np

from phase_01_nn.module import Module


class BatchNormCache(NamedTuple):
    x_hat: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    training: bool
    mean: np.ndarray
    var: np.ndarray


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    *,
    training: bool = True,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
    eps: float = 1e-5,
):
    """x: (..., D), gamma, beta: (D,) -> (..., D), gamma * (x - mean) / sqrt(var + eps) + beta.

    ``training=True``: mean and var of this batch (over all leading axes; ``cache.mean`` and
    ``cache.var`` hold them for the running averages). ``training=False``: the running ones.
    """
    if gamma.shape != (x.shape[-1],) or beta.shape != (x.shape[-1],):
        raise ValueError(
            f"batchnorm: gamma {gamma.shape} and beta {beta.shape} must be ({x.shape[-1]},) "
            f"for x of shape {x.shape}"
        )
    axes = tuple(range(x.ndim - 1))
    if training:
        if x.size // x.shape[-1] < 2:
            raise ValueError(f"batchnorm in training mode needs at least 2 rows, got x {x.shape}")
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batchnorm in inference mode needs running_mean and running_var")
        mean, var = running_mean, running_var
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, BatchNormCache(x_hat, inv_std, gamma, training, mean, var)


def batchnorm_backward(dout, cache: BatchNormCache):
    """Training: dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)).
    Inference: dx = dout * gamma * inv_std (the statistics are constants)."""
    axes = tuple(range(dout.ndim - 1))
    dgamma = np.sum(dout * cache.x_hat, axis=axes)
    dbeta = np.sum(dout, axis=axes)
    dx_hat = dout * cache.gamma
    if cache.training:
        dx = cache.inv_std * (
            dx_hat
            - dx_hat.mean(axis=axes)
            - cache.x_hat * np.mean(dx_hat * cache.x_hat, axis=axes)
        )
    else:
        dx = dx_hat * cache.inv_std
    return dx, dgamma, dbeta


class BatchNorm(Module):
    """Batch norm with learned gamma, beta and running statistics (momentum as in PyTorch:
    running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance)."""

    def __init__(self, dim: int, *, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        self.add_param("gamma", np.ones(dim, dtype=dtype))
        self.add_param("beta", np.zeros(dim, dtype=dtype))
        self.add_buffer("running_mean", np.zeros(dim, dtype=dtype))
        self.add_buffer("running_var", np.ones(dim, dtype=dtype))
        self.momentum, self.eps = momentum, eps
        self._cache = None

    def forward(self, x):
        out, self._cache = batchnorm_forward(
            x, self.params["gamma"], self.params["beta"], training=self.training,
            running_mean=self.buffers["running_mean"], running_var=self.buffers["running_var"],
            eps=self.eps,
        )
        if self.training:
            n = x.size // x.shape[-1]
            m = self.momentum
            self.buffers["running_mean"] *= 1 - m
            self.buffers["running_mean"] += m * self._cache.mean
            self.buffers["running_var"] *= 1 - m
            self.buffers["running_var"] += m * self._cache.var * (n / (n - 1))
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = batchnorm_backward(dout, self._cache)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx
