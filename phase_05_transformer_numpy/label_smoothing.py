"""Softmax cross-entropy against a smoothed target (Szegedy et al. 2016; Vaswani et al. 2017 used
epsilon = 0.1): the target distribution is q = (1 - eps) onehot(y) + eps / K, so the model is
never asked for probability exactly 1 and its logits stay bounded.

    loss = (1 - eps) * (-log p_y) + eps * mean_k(-log p_k),    d logits = (p - q) / N

the same convention as ``torch.nn.functional.cross_entropy(..., label_smoothing=eps)``.
Notes: ``phase_05_transformer_numpy/notes/04_encoder_decoder.md``.
"""

from __future__ import annotations

import numpy as np

from phase_00_math.cross_entropy import check_targets, pick
from phase_00_math.softmax import log_softmax


def label_smoothing_cross_entropy_forward(logits: np.ndarray, *, targets: np.ndarray,
                                          smoothing: float = 0.1):
    """logits: (..., K), targets: (...) ints -> loss: (), averaged over positions."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    targets = check_targets(logits, targets)
    log_probs = log_softmax(logits)
    nll = -np.mean(pick(log_probs, targets))
    uniform = -np.mean(log_probs)
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    return np.asarray(loss, dtype=logits.dtype), (log_probs, targets, smoothing)


def label_smoothing_cross_entropy_backward(dout, cache):
    """d logits = dout * (softmax(logits) - q) / N, q the smoothed target."""
    log_probs, targets, smoothing = cache
    k = log_probs.shape[-1]
    dlogits = np.exp(log_probs)
    dlogits -= smoothing / k
    np.put_along_axis(dlogits, targets[..., None],
                      pick(dlogits, targets)[..., None] - (1.0 - smoothing), axis=-1)
    dlogits *= np.asarray(dout, dtype=dlogits.dtype) / targets.size
    return (dlogits,)
