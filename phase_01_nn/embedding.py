"""Embedding lookup: row ``ids[i]`` of a table, for every id.

The forward is indexing; the backward scatters each upstream row back onto the row it came from,
ADDING when an id repeats (``np.add.at``; plain ``dW[ids] += dout`` would keep only the last one).
"""

import numpy as np

from phase_01_nn.module import Module


def check_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Integer ids, each in [0, vocab_size), or a clear error naming the first bad one."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"token ids must be integers, got dtype {ids.dtype}")
    bad = (ids < 0) | (ids >= vocab_size)
    if np.any(bad):
        raise ValueError(f"token id {ids[bad].flat[0]} is outside the vocabulary [0, {vocab_size})")
    return ids


def embedding_forward(weight: np.ndarray, *, ids: np.ndarray):
    """weight: (V, C), ids: (...) ints -> (..., C), out[...] = weight[ids[...]]."""
    ids = check_ids(ids, weight.shape[0])
    return weight[ids], (weight.shape, ids)


def embedding_backward(dout, cache):
    """dweight[v] = sum of dout at every position where ids == v."""
    shape, ids = cache
    dweight = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dweight, ids.reshape(-1), dout.reshape(-1, shape[1]))
    return (dweight,)


class Embedding(Module):
    """A (num_embeddings, dim) table initialised N(0, 1), as in ``torch.nn.Embedding``."""

    def __init__(self, num_embeddings: int, dim: int, *, rng: np.random.Generator,
                 std: float = 1.0, dtype=np.float32) -> None:
        super().__init__()
        self.add_param("weight", (std * rng.standard_normal((num_embeddings, dim))).astype(dtype))
        self._cache = None

    def forward(self, ids):
        out, self._cache = embedding_forward(self.params["weight"], ids=ids)
        return out

    def backward(self, dout):
        self.grads["weight"] += embedding_backward(dout, self._cache)[0]
        return None
