"""Cross-entropy of integer targets under predicted log-probabilities (the negative log-likelihood).

For a one-hot target the cross-entropy ``H(q, p) = -sum_k q_k log p_k`` reduces to
``-log p_target``; averaged over N examples it is the mean negative log-likelihood that every
language model in this course minimises. ``phase_01_nn/losses.py`` fuses it with log-softmax.
"""

import numpy as np


def check_targets(log_probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Integer class ids of shape ``log_probs.shape[:-1]``, each in ``[0, K)``, or a clear error."""
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != log_probs.shape[:-1]:
        raise ValueError(
            f"targets have shape {targets.shape}; expected {log_probs.shape[:-1]} "
            f"(the leading dimensions of scores of shape {log_probs.shape})"
        )
    if targets.size == 0:
        raise ValueError("cross-entropy of an empty batch is undefined")
    n_classes = log_probs.shape[-1]
    bad = (targets < 0) | (targets >= n_classes)
    if np.any(bad):
        raise ValueError(
            f"target {targets[bad].flat[0]} is outside the {n_classes} classes [0, {n_classes})"
        )
    return targets


def pick(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``values[..., targets]`` element by element: values (..., K), targets (...) -> (...)."""
    return np.take_along_axis(values, targets[..., None], axis=-1)[..., 0]


def cross_entropy_forward(log_probs: np.ndarray, *, targets: np.ndarray):
    """log_probs: (..., K), targets: (...) ints -> loss: () = -mean(log_probs[..., target])."""
    targets = check_targets(log_probs, targets)
    loss = -np.mean(pick(log_probs, targets))
    return np.asarray(loss, dtype=log_probs.dtype), (log_probs.shape, targets, log_probs.dtype)


def cross_entropy_backward(dout, cache):
    """d log_probs = -dout / N at each target position, 0 elsewhere."""
    shape, targets, dtype = cache
    dlog_probs = np.zeros(shape, dtype=dtype)
    np.put_along_axis(dlog_probs, targets[..., None], -np.asarray(dout) / targets.size, axis=-1)
    return (dlog_probs,)
