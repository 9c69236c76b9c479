"""Global-norm gradient clipping (Pascanu et al. 2013): rescale all gradients together when their
joint L2 norm exceeds ``max_norm``, which keeps the direction and bounds the step."""

import math

import numpy as np


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt of the sum of squares of every gradient element, accumulated in float64."""
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale ``grads`` in place by ``max_norm / (norm + 1e-6)`` when that is below 1 (PyTorch's
    rule). Returns the norm before clipping; a non-finite norm is returned unchanged, unscaled,
    so the caller can stop on it."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norm = global_norm(grads)
    coefficient = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and coefficient < 1.0:
        for grad in grads.values():
            grad *= coefficient
    return norm
