"""Embedding lookup: row ``ids[i]`` of a table, for every id.

The forward is indexing; the backward scatters each upstream row back onto the row it came from,
ADDING when an id repeats (``np.add.at``; plain ``dW[ids] += dout`` would keep only the last one).
"""

import numpy as np
from numba import njit

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
        grad = self.grads["weight"]
        if FUSED and dout.dtype == grad.dtype == np.float32 and grad.flags.c_contiguous:
            # the fast path: the rows added straight into the gradient, in one loop
            _, ids = self._cache
            _add_rows(ids.reshape(-1), np.ascontiguousarray(dout).reshape(-1, grad.shape[1]),
                      grad)
            return None
        grad += embedding_backward(dout, self._cache)[0]
        return None


# ``np.add.at`` is NumPy's general scatter-add, which works element by element: 8.0 ms for the
# (2048, 384) upstream gradient of phase 6's ``larger`` GPT, where this loop, one row of C adds
# for each id, takes 0.18. float32 only; ``embedding_backward`` above is the reference (and the
# exercise), ``tests/test_dropout_embedding.py`` checks that the two agree, and ``FUSED = False``
# (as the exercise mode sets it) runs it everywhere.
FUSED = True


@njit(cache=True, nogil=True)
def _add_rows(ids, rows, table):
    for n in range(ids.size):
        table[ids[n]] += rows[n]
