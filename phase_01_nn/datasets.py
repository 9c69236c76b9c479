"""Generated 2-D classification sets: spirals, moons and XOR. Each returns ``(x, y)`` with
x: (N, 2) float64 and y: (N,) int64 class labels, drawn from an explicit generator."""

from collections.abc import Callable

import numpy as np


def spirals(rng: np.random.Generator, n_per_class: int = 100, n_classes: int = 3,
            noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (the CS231n set): radius grows 0 -> 1 while the
    angle sweeps 4 radians per class, plus Gaussian noise on the angle."""
    if n_per_class < 1 or n_classes < 2:
        raise ValueError(
            f"need n_per_class >= 1 and n_classes >= 2, got {n_per_class}, {n_classes}"
        )
    radius = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    start = labels * 4.0
    angle = start + radius * 4.0 + noise * rng.standard_normal(radius.size)
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return x, labels.astype(np.int64)


def moons(rng: np.random.Generator, n_samples: int = 200, noise: float = 0.1
          ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles."""
    if n_samples < 2:
        raise ValueError(f"need n_samples >= 2, got {n_samples}")
    n_upper = n_samples // 2
    n_lower = n_samples - n_upper
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n_lower)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n_samples, 2))
    y = np.concatenate([np.zeros(n_upper), np.ones(n_lower)]).astype(np.int64)
    return x, y


def xor(rng: np.random.Generator, n_samples: int = 200, noise: float = 0.1
        ) -> tuple[np.ndarray, np.ndarray]:
    """Four blobs at the corners of the square (+-1, +-1); the label is 1 where the signs differ,
    the set that no single line separates."""
    if n_samples < 4:
        raise ValueError(f"need n_samples >= 4, got {n_samples}")
    corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    which = np.arange(n_samples) % 4
    x = corners[which] + noise * rng.standard_normal((n_samples, 2))
    y = np.array([0, 1, 1, 0], dtype=np.int64)[which]
    return x, y


DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "moons": moons,
    "spirals": spirals,
    "xor": xor,
}


def make_dataset(name: str, rng: np.random.Generator, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """A generated set by name: ``make_dataset("spirals", rng, n_per_class=100)``."""
    try:
        maker = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}"
        ) from None
    return maker(rng, **kwargs)
