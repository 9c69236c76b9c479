"""Position information for a Transformer, added to the token embeddings.

Attention is permutation-equivariant: without positions, "dog bites man" and "man bites dog" give
the same set of outputs. Two ways to add positions, both as ``out = x + table[:T]``:
- sinusoidal (Vaswani et al. 2017): a fixed table, PE[p, 2i] = sin(p / 10000^(2i/C)),
  PE[p, 2i+1] = cos(same angle); nothing to learn, defined for any position;
- learned (GPT-2's ``wpe``): a (block_size, C) parameter table, trained like any embedding.
Notes: ``phase_05_transformer_numpy/notes/02_positions_and_the_block.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.module import Module


def sinusoidal_table(n_positions: int, dim: int, *, base: float = 10000.0,
                     dtype=np.float64) -> np.ndarray:
    """(n_positions, dim): even columns sin(p * w_i), odd columns cos(p * w_i),
    w_i = base^(-2i/dim). An odd ``dim`` drops the last cosine column."""
    if n_positions < 1 or dim < 1:
        raise ValueError(f"need n_positions >= 1 and dim >= 1, got {n_positions}, {dim}")
    positions = np.arange(n_positions, dtype=np.float64)[:, None]
    frequencies = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    angles = positions * frequencies
    table = np.empty((n_positions, dim))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return table.astype(dtype)


def positional_encoding_forward(x: np.ndarray, table: np.ndarray, *, offset: int = 0):
    """x: (..., T, C), table: (P, C) -> x + table[offset:offset + T], broadcast over the
    leading dims. Needs offset + T <= P."""
    t = x.shape[-2]
    if table.ndim != 2 or table.shape[1] != x.shape[-1]:
        raise ValueError(f"positional_encoding_forward: table has shape {table.shape}; expected "
                         f"(positions, {x.shape[-1]}) for x of shape {x.shape}")
    if offset < 0 or offset + t > table.shape[0]:
        raise ValueError(f"positions {offset}..{offset + t - 1} are outside the table of "
                         f"{table.shape[0]} positions (the model's context)")
    return x + table[offset:offset + t], (table.shape, offset, t)


def positional_encoding_backward(dout: np.ndarray, cache):
    """dx = dout; dtable[offset + t] = dout[..., t, :] summed over the leading dims, 0 elsewhere."""
    shape, offset, t = cache
    dtable = np.zeros(shape, dtype=dout.dtype)
    dtable[offset:offset + t] = dout.reshape(-1, t, shape[1]).sum(axis=0)
    return dout, dtable


class LearnedPositions(Module):
    """A trained (n_positions, C) table ``weight`` (GPT-2's ``wpe``), initialised N(0, std^2)."""

    def __init__(self, n_positions: int, dim: int, *, rng: np.random.Generator,
                 std: float = 0.02, dtype=np.float32) -> None:
        super().__init__()
        self.add_param("weight", (std * rng.standard_normal((n_positions, dim))).astype(dtype))
        self._cache = None

    def forward(self, x, offset: int = 0):
        out, self._cache = positional_encoding_forward(x, self.params["weight"], offset=offset)
        return out

    def backward(self, dout):
        _, dtable = positional_encoding_backward(dout, self._cache)
        self.grads["weight"] += dtable
        return dout


class SinusoidalPositions(Module):
    """The fixed table of Vaswani et al., kept as a buffer: saved with the model, never trained."""

    def __init__(self, n_positions: int, dim: int, *, dtype=np.float32) -> None:
        super().__init__()
        self.add_buffer("table", sinusoidal_table(n_positions, dim, dtype=dtype))
        self._cache = None

    def forward(self, x, offset: int = 0):
        out, self._cache = positional_encoding_forward(x, self.buffers["table"], offset=offset)
        return out

    def backward(self, dout):
        return dout
