"""Muon (Keller Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/ and
https://github.com/KellerJordan/Muon): momentum SGD whose update for a weight matrix is replaced
by the nearest semi-orthogonal matrix, U V^T for the update's SVD U S V^T.

The SVD is too slow to take every step, so Muon approximates U V^T with a few steps of a quintic
Newton-Schulz iteration X <- a X + b (X X^T) X + c (X X^T)^2 X, which maps each singular value s
to p(s) = a s + b s^3 + c s^5 and leaves U and V alone. With (a, b, c) = (3.4445, -4.7750,
2.0315), Keller Jordan's coefficients, the slope at 0 is large (3.4) so small singular values grow
fast; the price is that they end in a band around 1 rather than at 1 exactly.
Derivation and measured band: ``phase_09_modern/notes/09_dpo_and_muon.md``.
"""

from __future__ import annotations

import math

import numpy as np

from phase_01_nn.optimizers import Optimizer

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz_orthogonalize(g: np.ndarray, *, steps: int = 5, eps: float = 1e-7,
                                coefficients: tuple[float, float, float] = NS_COEFFICIENTS
                                ) -> np.ndarray:
    """g: (A, B) -> (A, B) with the same singular vectors and singular values near 1.

    X_0 = G / (||G||_F + eps) (so every singular value is <= 1); then ``steps`` times
    X <- a X + (b M + c M^2) X with M = X X^T, on the wide orientation (fewer rows) so that
    M is the smaller Gram matrix.
    """
    if g.ndim != 2:
        raise ValueError(f"newton_schulz: expected a matrix, got shape {g.shape}")
    a, b, c = (g.dtype.type(v) for v in coefficients)
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / (np.linalg.norm(x) + g.dtype.type(eps))
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * (m @ m)) @ x
    return x.T if tall else x


class Muon(Optimizer):
    """Muon on a dict of 2-D parameters, updated in place by ``step(grads)``.

    buf <- buf + (1 - mu)(g - buf); u = g + mu (buf - g) with Nesterov, else buf;
    p <- p (1 - lr wd) - lr sqrt(max(1, A / B)) NS(u) for p of shape (A, B). This is the rule of
    Keller Jordan's ``muon_update`` and of ``torch.optim.Muon`` (which orthogonalises in
    bfloat16; here the parameter's own dtype is used). Muon is meant for the hidden weight
    matrices; embeddings, heads, gains and biases go to AdamW.
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float = 0.02, *,
                 momentum: float = 0.95, nesterov: bool = True, weight_decay: float = 0.0,
                 ns_steps: int = 5) -> None:
        super().__init__(params, lr)
        flat = sorted(name for name, p in params.items() if p.ndim != 2)
        if flat:
            raise ValueError(f"Muon updates matrices only; give {flat} to AdamW")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Muon: momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.ns_steps = ns_steps

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        state = self.state[name]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(param)
        buf = state["momentum_buffer"]
        buf += (1.0 - self.momentum) * (grad - buf)
        update = grad + self.momentum * (buf - grad) if self.nesterov else buf
        orthogonal = newton_schulz_orthogonalize(update, steps=self.ns_steps)
        rows, cols = param.shape
        if self.weight_decay:
            param *= 1.0 - self.lr * self.weight_decay
        param -= (self.lr * math.sqrt(max(1.0, rows / cols)) * orthogonal).astype(param.dtype)
