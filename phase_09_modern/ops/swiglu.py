"""The SwiGLU feed-forward layer (Shazeer 2020, "GLU Variants Improve Transformer").

A gated linear unit: one projection, passed through SiLU (x sigmoid(x), "Swish"), gates a second
projection elementwise, and a third maps back to the model width:
``y = (silu(x W1) * (x W3)) W2``. Three matrices instead of two, so LLaMA shrinks the hidden
width to about 2/3 of 4 d to keep the parameter count of GPT's 4 d MLP.
Derivation: ``phase_09_modern/notes/03_swiglu.md``.
"""

from __future__ import annotations

import math

import numpy as np

from phase_01_nn.activations import sigmoid


def swiglu_forward(x: np.ndarray, w1: np.ndarray, w3: np.ndarray, w2: np.ndarray):
    """x: (..., C), w1, w3: (C, F), w2: (F, C) -> y: (..., C), y = (silu(x W1) * (x W3)) W2."""
    if w1.ndim != 2 or w1.shape != w3.shape or w2.shape != w1.shape[::-1]:
        raise ValueError(f"swiglu: expected w1, w3 (C, F) and w2 (F, C), got {w1.shape}, "
                         f"{w3.shape}, {w2.shape}")
    if x.shape[-1] != w1.shape[0]:
        raise ValueError(f"swiglu: x has {x.shape[-1]} features, the weights expect {w1.shape[0]}")
    a, b = x @ w1, x @ w3
    s = sigmoid(a)
    h = a * s * b
    return h @ w2, (x, w1, w3, w2, a, b, s, h)


def swiglu_backward(dy: np.ndarray, cache):
    """-> (dx, dw1, dw3, dw2). With dh = dy W2^T: db = dh silu(a);
    da = dh b s (1 + a (1 - s)) (the derivative of a sigmoid(a)); dx = da W1^T + db W3^T."""
    x, w1, w3, w2, a, b, s, h = cache
    c, f = w1.shape
    dh = dy @ w2.T
    db = dh * (a * s)
    da = dh * b * s * (1.0 + a * (1.0 - s))
    dx = da @ w1.T + db @ w3.T
    x2 = x.reshape(-1, c)
    dw1 = x2.T @ da.reshape(-1, f)
    dw3 = x2.T @ db.reshape(-1, f)
    dw2 = h.reshape(-1, f).T @ dy.reshape(-1, c)
    return dx, dw1, dw3, dw2


def llama_hidden_width(d: int, multiple_of: int = 256) -> int:
    """LLaMA's F for width d: 2/3 of 4 d, rounded up to a multiple of ``multiple_of``, so that
    SwiGLU's 3 d F parameters stay close to the 8 d^2 of a GELU MLP with F = 4 d."""
    return multiple_of * math.ceil(int(2 * 4 * d / 3) / multiple_of)


def init_swiglu(rng: np.random.Generator, d: int, d_ff: int, *, std: float = 0.02,
                dtype=np.float32) -> dict[str, np.ndarray]:
    """Parameters {w1: (d, d_ff), w3: (d, d_ff), w2: (d_ff, d)}, N(0, std^2): 3 d d_ff numbers."""
    return {name: (std * rng.standard_normal(shape)).astype(dtype)
            for name, shape in (("w1", (d, d_ff)), ("w3", (d, d_ff)), ("w2", (d_ff, d)))}
