"""Calibration (Guo et al. 2017): the expected calibration error over equal-width bins of the
top-1 probability (Naeini et al. 2015), before and after temperature scaling, the one-parameter
fix fitted on one half of the validation predictions and measured on the other; and the
reliability diagram."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from phase_09_modern.research.failure_modes.scoring import mean_nll, softmax, top1  # noqa: E402


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict:
    """Equal-width bins of the top-1 probability: bin m holds (m/M, (m+1)/M] (the first also 0).
    Per bin: ``count``, mean ``confidence`` and ``accuracy`` (None where empty)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.shape != correct.shape or confidence.ndim != 1 or len(confidence) == 0:
        raise ValueError(f"need two equal, non-empty 1-D arrays, got {confidence.shape} and "
                         f"{correct.shape}")
    if confidence.min() < 0 or confidence.max() > 1:
        raise ValueError("confidences must lie in [0, 1]")
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, bins) / count
        acc = np.bincount(index, correct, bins) / count

    def per_bin(values: np.ndarray) -> list:
        return [None if c == 0 else float(v) for c, v in zip(count, values, strict=True)]

    return {"edges": np.linspace(0, 1, bins + 1).tolist(), "count": count.tolist(),
            "confidence": per_bin(conf), "accuracy": per_bin(acc)}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = 15) -> float:
    """ECE = sum over bins of (share of predictions in the bin) * |accuracy - mean confidence|
    (Naeini et al. 2015), with ``reliability_bins``' equal-width bins."""
    table = reliability_bins(confidence, correct, bins)
    n = sum(table["count"])
    return sum(c / n * abs(a - p) for c, a, p in zip(table["count"], table["accuracy"],
                                                    table["confidence"], strict=True) if c)


def fit_temperature(logits: np.ndarray, targets: np.ndarray, *, low: float = 0.01,
                    high: float = 100.0, iters: int = 60) -> float:
    """The T in [low, high] that minimises ``mean_nll(logits, targets, T)`` (Guo et al. 2017).
    The loss is convex in b = 1/T, with derivative mean(E_softmax(b z)[z] - z_target), so the
    root of that increasing function is found by bisection on log b."""
    z = logits.astype(np.float64)
    picked = z[np.arange(len(targets)), targets]
    lo, hi = np.log(1.0 / high), np.log(1.0 / low)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        slope = np.mean((softmax(np.exp(mid) * z) * z).sum(axis=-1) - picked)
        lo, hi = (mid, hi) if slope < 0 else (lo, mid)
    return float(1.0 / np.exp(0.5 * (lo + hi)))


def calibration(logits: np.ndarray, targets: np.ndarray, bins: int = 15) -> dict:
    """ECE and NLL on the second half of the predictions, before and after temperature scaling
    fitted on the first half; the reliability bins of both."""
    half = len(targets) // 2
    if half < 1:
        raise ValueError(f"calibration needs at least 2 predictions, got {len(targets)}")
    temperature = fit_temperature(logits[:half], targets[:half])
    held, held_targets = logits[half:], targets[half:]
    raw = top1(softmax(held), held_targets)
    scaled = top1(softmax(held / temperature), held_targets)
    return {"accuracy": float(raw[1].mean()), "mean_confidence": float(raw[0].mean()),
            "ece": expected_calibration_error(*raw, bins),
            "temperature": temperature,
            "ece_scaled": expected_calibration_error(*scaled, bins),
            "nll": mean_nll(held, held_targets), "nll_scaled":
                mean_nll(held, held_targets, temperature),
            "bins": reliability_bins(*raw, bins), "bins_scaled": reliability_bins(*scaled, bins)}


def plot_reliability(result: dict, path: Path) -> None:
    """Accuracy against mean top-1 probability per bin, before and after temperature scaling,
    one line per seed, with the share of predictions per bin underneath."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), height_ratios=[3, 1], sharex=True)
    for column, (key, title) in enumerate((("bins", "as trained (T = 1)"),
                                           ("bins_scaled", "after temperature scaling"))):
        top, bottom = axes[0, column], axes[1, column]
        top.plot([0, 1], [0, 1], "k:", label="perfect calibration")
        for run in result["runs"]:
            bins = run["calibration"][key]
            kept = [i for i, n in enumerate(bins["count"]) if n]
            top.plot([bins["confidence"][i] for i in kept], [bins["accuracy"][i] for i in kept],
                     "o-", ms=4, label=f"seed {run['seed']}, ECE "
                     f"{run['calibration']['ece' if key == 'bins' else 'ece_scaled']:.4f}")
        first = result["runs"][0]["calibration"][key]
        edges = np.asarray(first["edges"])
        share = np.asarray(first["count"]) / sum(first["count"])
        bottom.bar(edges[:-1], share, width=np.diff(edges), align="edge", edgecolor="k")
        top.set_title(title)
        top.set_ylabel("accuracy in the bin")
        top.legend(fontsize=7)
        top.grid(alpha=0.3)
        bottom.set_xlabel("top-1 probability (15 equal-width bins)" if len(edges) == 16 else
                          "top-1 probability")
        bottom.set_ylabel("share (seed 0)")
    fig.suptitle("reliability of the next-character probability (validation, second half)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

