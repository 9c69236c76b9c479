"""Loss functions: softmax cross-entropy (fused) and mean squared error.

Fusing log-softmax with the negative log-likelihood gives the famous gradient
``(softmax(logits) - onehot(target)) / N``: no division by a probability, so no blow-up when the
model is confidently wrong. Derivation: ``phase_01_nn/notes/03_losses.md``.
"""

import numpy as np

from phase_00_math.cross_entropy import check_targets, pick
from phase_00_math.softmax import log_softmax


def softmax_cross_entropy_forward(logits: np.ndarray, *, targets: np.ndarray):
    """logits: (..., K), targets: (...) ints -> loss: () = mean over positions of -log p[target]."""
    targets = check_targets(logits, targets)
    log_probs = log_softmax(logits)
    loss = -np.mean(pick(log_probs, targets))
    return np.asarray(loss, dtype=logits.dtype), (log_probs, targets)


def softmax_cross_entropy_backward(dout, cache):
    """d logits = dout * (softmax(logits) - onehot(targets)) / N."""
    log_probs, targets = cache
    dlogits = np.exp(log_probs)
    np.put_along_axis(dlogits, targets[..., None], pick(dlogits, targets)[..., None] - 1.0, axis=-1)
    dlogits *= np.asarray(dout, dtype=dlogits.dtype) / targets.size
    return (dlogits,)


def mse_forward(prediction: np.ndarray, target: np.ndarray):
    """prediction, target: same shape -> loss: () = mean((prediction - target)^2)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse_forward: prediction has shape {prediction.shape} but target has {target.shape}"
        )
    diff = prediction - target
    return np.asarray(np.mean(diff * diff), dtype=prediction.dtype), diff


def mse_backward(dout, diff):
    """d prediction = 2 dout (prediction - target) / N; d target is its negative."""
    dprediction = (2.0 / diff.size) * np.asarray(dout, dtype=diff.dtype) * diff
    return dprediction, -dprediction
