"""Hypothesis strategies shared by every phase's tests, kept in one place.

Arrays are not drawn element by element: hypothesis draws the shape and a seed, and NumPy's
generator fills the values. Gradient checks need well-conditioned values (no 1e300, no exact
ties at a kink), which a seeded normal draw gives, while hypothesis still explores shapes and
shrinks a failure to the smallest one.
"""

import numpy as np
from hypothesis import strategies as st


def seeds():
    """Seeds for ``np.random.default_rng``."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def sizes(min_value: int = 1, max_value: int = 5):
    """One dimension's length."""
    return st.integers(min_value=min_value, max_value=max_value)


def shapes(min_dims: int = 1, max_dims: int = 3, min_side: int = 1, max_side: int = 5):
    """Array shapes, as tuples."""
    return st.lists(
        sizes(min_side, max_side), min_size=min_dims, max_size=max_dims
    ).map(tuple)


def away_from_zero(rng: np.random.Generator, shape, margin: float = 0.1) -> np.ndarray:
    """Normal draws pushed at least ``margin`` away from 0: inputs for ops with a kink at 0."""
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + margin, x - margin)
