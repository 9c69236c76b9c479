"""Rosenblatt's perceptron (1958): a linear threshold unit and its error-correcting rule.

On a mistake, w += lr * y * x and b += lr * y (labels y in {-1, +1}). Novikoff (1962) proved that
on data separable with margin gamma inside a ball of radius R the rule makes at most
(R / gamma)^2 mistakes; on XOR, which no line separates, it never stops making them
(Minsky and Papert 1969). Notes: ``phase_01_nn/notes/01_perceptron.md``.
"""

from typing import NamedTuple

import numpy as np


class PerceptronResult(NamedTuple):
    w: np.ndarray
    b: float
    converged: bool
    mistakes_per_epoch: list[int]


def perceptron_predict(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """x: (N, D) -> labels (N,) in {-1, +1} (a point on the boundary counts as +1)."""
    return np.where(x @ w + b >= 0, 1, -1)


def perceptron_train(x: np.ndarray, y: np.ndarray, *, epochs: int = 100, lr: float = 1.0
                     ) -> PerceptronResult:
    """Cycle through the data in order, updating on every mistake, until an epoch makes none."""
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"need x (N, D) and y (N,), got x {x.shape} and y {y.shape}")
    if not np.all(np.isin(y, (-1, 1))):
        raise ValueError("perceptron labels must be -1 or +1")
    w = np.zeros(x.shape[1])
    b = 0.0
    mistakes_per_epoch: list[int] = []
    for _ in range(epochs):
        mistakes = 0
        for xi, yi in zip(x, y, strict=True):
            if yi * (xi @ w + b) <= 0:
                w += lr * yi * xi
                b += lr * yi
                mistakes += 1
        mistakes_per_epoch.append(mistakes)
        if mistakes == 0:
            return PerceptronResult(w, b, True, mistakes_per_epoch)
    return PerceptronResult(w, b, False, mistakes_per_epoch)
