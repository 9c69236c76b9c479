"""RMSNorm (Zhang and Sennrich 2019) and QK-norm.

RMSNorm keeps layer norm's rescaling and drops its re-centring: each token's features are divided
by their root mean square, then scaled by a learned ``gamma``. No mean, no beta: cheaper, and as
good in practice (LLaMA, Mistral and most models since use it). QK-norm applies the same
normalisation to each head's query and key vectors before the scores, which bounds the logits'
growth (used by OLMo 2, Gemma 3, Qwen 3).
Derivation: ``phase_09_modern/notes/02_rmsnorm.md``.
"""

from __future__ import annotations

import numpy as np

from phase_04_attention.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)


def rms_norm_forward(x: np.ndarray, gamma: np.ndarray | None, *, eps: float = 1e-6):
    """x: (..., C), gamma: (C,) or None -> y: (..., C), y = gamma * x / sqrt(mean(x^2) + eps)."""
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"rms_norm: x must be (..., C) with C >= 1, got {x.shape}")
    if gamma is not None and gamma.shape != (x.shape[-1],):
        raise ValueError(f"rms_norm: gamma has shape {gamma.shape}; expected ({x.shape[-1]},) "
                         f"for x of shape {x.shape}")
    mean_square = np.mean(x * x, axis=-1, keepdims=True)
    inv_rms = 1.0 / np.sqrt(mean_square + x.dtype.type(eps))
    x_hat = x * inv_rms
    y = x_hat if gamma is None else x_hat * gamma
    return y, (x_hat, inv_rms, gamma)


def rms_norm_backward(dout: np.ndarray, cache):
    """-> (dx, dgamma). With g = dout * gamma: dx = (g - x_hat * mean(g * x_hat)) / rms;
    dgamma = sum of dout * x_hat over every leading axis."""
    x_hat, inv_rms, gamma = cache
    g = dout if gamma is None else dout * gamma
    dx = (g - x_hat * np.mean(g * x_hat, axis=-1, keepdims=True)) * inv_rms
    rows = dout.reshape(-1, dout.shape[-1])
    dgamma = None if gamma is None else np.einsum("nc,nc->c", rows, x_hat.reshape(rows.shape))
    return dx, dgamma


def qk_norm_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                              gamma_q: np.ndarray, gamma_k: np.ndarray, *,
                              causal: bool = False, eps: float = 1e-6):
    """q: (B, H, Tq, D), k: (B, H, Tk, D), v: (B, H, Tk, Dv), gamma_q, gamma_k: (D,)
    -> y: (B, H, Tq, Dv).

    y = softmax(rms(q) rms(k)^T / sqrt(D)) v, rms normalising each head's D features.
    """
    q_hat, q_cache = rms_norm_forward(q, gamma_q, eps=eps)
    k_hat, k_cache = rms_norm_forward(k, gamma_k, eps=eps)
    y, attention = scaled_dot_product_attention_forward(q_hat, k_hat, v, causal=causal)
    return y, (q_cache, k_cache, attention)


def qk_norm_attention_backward(dy: np.ndarray, cache):
    """-> (dq, dk, dv, dgamma_q, dgamma_k): back through the attention, then both norms."""
    q_cache, k_cache, attention = cache
    dq_hat, dk_hat, dv = scaled_dot_product_attention_backward(dy, attention)
    dq, dgamma_q = rms_norm_backward(dq_hat, q_cache)
    dk, dgamma_k = rms_norm_backward(dk_hat, k_cache)
    return dq, dk, dv, dgamma_q, dgamma_k
