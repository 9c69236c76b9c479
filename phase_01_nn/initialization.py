"""Weight initialisers that keep the signal's variance constant from layer to layer.

Glorot and Bengio (2010) balance the forward and backward variance of a linear layer:
Var(w) = 2 / (fan_in + fan_out). He et al. (2015) account for ReLU zeroing half its inputs:
Var(w) = 2 / fan_in. Derivation: ``phase_01_nn/notes/05_initialisation.md``.
Weights are (fan_in, fan_out), as ``linear_forward`` uses them.
"""

import math

import numpy as np

GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0), "gelu": 1.0}


def gain(nonlinearity: str) -> float:
    """The factor by which the nonlinearity's output variance is restored (PyTorch's values)."""
    try:
        return GAINS[nonlinearity]
    except KeyError:
        raise ValueError(
            f"unknown nonlinearity {nonlinearity!r}; choose one of {sorted(GAINS)}"
        ) from None


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(f"initialisers take a (fan_in, fan_out) shape, got {shape}")
    return shape[0], shape[1]


def xavier_uniform(rng: np.random.Generator, shape, gain: float = 1.0, dtype=np.float32):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)), so Var = gain^2 * 2/(in + out)."""
    fan_in, fan_out = _fans(tuple(shape))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def xavier_normal(rng: np.random.Generator, shape, gain: float = 1.0, dtype=np.float32):
    """N(0, gain^2 * 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tuple(shape))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return (std * rng.standard_normal(shape)).astype(dtype)


def kaiming_normal(rng: np.random.Generator, shape, nonlinearity: str = "relu", dtype=np.float32):
    """N(0, gain^2 / fan_in): for ReLU, Var = 2 / fan_in (He et al. 2015)."""
    fan_in, _ = _fans(tuple(shape))
    std = gain(nonlinearity) / math.sqrt(fan_in)
    return (std * rng.standard_normal(shape)).astype(dtype)


def kaiming_uniform(rng: np.random.Generator, shape, nonlinearity: str = "relu", dtype=np.float32):
    """U(-a, a) with a = gain * sqrt(3 / fan_in), the same variance as ``kaiming_normal``."""
    fan_in, _ = _fans(tuple(shape))
    bound = gain(nonlinearity) * math.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
