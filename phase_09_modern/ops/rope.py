"""Rotary position embeddings (Su et al. 2021, RoFormer): rotate each pair of features of a query
or key by an angle proportional to its position, so that the dot product of a query at m with a
key at n depends on the positions only through m - n.

Two layouts of the pairs are in use and give the same scores once the weights are permuted:
- ``"interleaved"``: pairs (x[2i], x[2i+1]), as in the RoFormer paper and Meta's LLaMA code;
- ``"half"``: pairs (x[i], x[i + D/2]), the "rotate-half" layout of GPT-NeoX and Hugging Face's
  LLaMA. ``interleaved_to_half_permutation`` maps one to the other.
Derivation: ``phase_09_modern/notes/01_rope.md``.
"""

from __future__ import annotations

import numpy as np

LAYOUTS = ("interleaved", "half")


def rope_angles(positions: np.ndarray, d: int, *, base: float = 10000.0) -> np.ndarray:
    """positions: (T,) -> angles: (T, D/2), angle[t, i] = positions[t] * base^(-2i / D)."""
    if d < 2 or d % 2:
        raise ValueError(f"rope: the feature size D must be even and >= 2, got {d}")
    inv_freq = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    return np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]


def _split_pairs(x: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    if layout == "interleaved":
        return x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def _join_pairs(first: np.ndarray, second: np.ndarray, layout: str) -> np.ndarray:
    out = np.empty((*first.shape[:-1], 2 * first.shape[-1]), dtype=first.dtype)
    if layout == "interleaved":
        out[..., 0::2], out[..., 1::2] = first, second
    else:
        half = first.shape[-1]
        out[..., :half], out[..., half:] = first, second
    return out


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, layout: str) -> np.ndarray:
    """Rotate every pair (a, b) by the angle: (a cos - b sin, a sin + b cos)."""
    a, b = _split_pairs(x, layout)
    return _join_pairs(a * cos - b * sin, a * sin + b * cos, layout)


def rope_forward(x: np.ndarray, *, positions: np.ndarray | None = None, base: float = 10000.0,
                 layout: str = "interleaved"):
    """x: (..., T, D), positions: (T,) integers (default 0..T-1) -> y: (..., T, D).

    y = R(positions[t]) x[t]: pair i of the features is rotated by positions[t] * base^(-2i/D).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"rope: unknown layout {layout!r}; choose one of {LAYOUTS}")
    if x.ndim < 2:
        raise ValueError(f"rope: x must be (..., T, D), got shape {x.shape}")
    t = x.shape[-2]
    positions = np.arange(t) if positions is None else np.asarray(positions)
    if positions.shape != (t,):
        raise ValueError(f"rope: positions must have shape ({t},) for x of shape {x.shape}, "
                         f"got {positions.shape}")
    angles = rope_angles(positions, x.shape[-1], base=base)
    cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
    return _rotate(x, cos, sin, layout), (cos, sin, layout)


def rope_backward(dy: np.ndarray, cache):
    """dx = R(-angle) dy: a rotation's inverse is its transpose, a rotation by minus the angle."""
    cos, sin, layout = cache
    return (_rotate(dy, cos, -sin, layout),)


def interleaved_to_half_permutation(d: int) -> np.ndarray:
    """(D,) indices p with half_layout_vector = interleaved_layout_vector[p]: [0, 2, 4, ..., 1,
    3, 5, ...]. Then rope(x[..., p], layout="half") == rope(x, layout="interleaved")[..., p]."""
    if d < 2 or d % 2:
        raise ValueError(f"rope: the feature size D must be even and >= 2, got {d}")
    return np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])


def permute_heads_for_half_layout(w: np.ndarray, n_head: int) -> np.ndarray:
    """w: (C, H*D), a query or key projection (``x @ w``) made for the interleaved layout ->
    the same projection for the rotate-half layout: each head's D output columns reordered by
    ``interleaved_to_half_permutation(D)``. (Torch stores W as (H*D, C): there these are rows,
    the permutation Hugging Face's LLaMA conversion script applies to ``wq`` and ``wk``.)"""
    if w.ndim != 2 or w.shape[1] % n_head:
        raise ValueError(f"rope: w must be (C, H*D) with H={n_head} dividing its columns, "
                         f"got {w.shape}")
    d = w.shape[1] // n_head
    p = interleaved_to_half_permutation(d)
    columns = (np.arange(n_head)[:, None] * d + p[None, :]).reshape(-1)
    return w[:, columns]
