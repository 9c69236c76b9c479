"""``python -m phase_02_sequence vanishing``: how much gradient reaches h_t from h_T, against
T - t, for a vanilla RNN and an LSTM, at initialisation and after training on the adding problem.
Notes: ``phase_02_sequence/notes/02_vanishing_and_exploding.md``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from phase_01_nn.config_options import check_config  # noqa: E402
from phase_01_nn.metrics import (  # noqa: E402
    MetricsLog,
    write_summary,
)
from phase_02_sequence.adding import (  # noqa: E402
    AddingConfig,
    SequenceRegressor,
    adding_batch,
    train_adding,
)


def state_gradient_norms(layer, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """norms[k] = mean over the batch of || d(u . h_T) / d s_{T-k} ||, k = 0..T, for a random
    unit vector u per example, where s_t is the layer's whole state after step t ((h_t) for an
    RNN, (h_t, c_t) for an LSTM; s_0 is the zero initial state). norms[0] = ||u|| = 1. Each
    t < T gets its own backward over x[:, t:], starting from s_t."""
    batch, length, _ = x.shape
    u = rng.standard_normal((batch, layer.hidden_size)).astype(x.dtype)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    norms = np.ones(length + 1)
    for t in range(length):
        state = (tuple(np.zeros((batch, layer.hidden_size), x.dtype) for _ in layer.state_names)
                 if t == 0 else layer.forward(x[:, :t])[1])
        tail, final = layer.forward(x[:, t:], state)
        dfinal = (u, *(np.zeros_like(s) for s in final[1:]))
        _, dstate = layer.backward(np.zeros_like(tail), dfinal)
        squared = sum(np.sum(d.astype(np.float64) ** 2, axis=1) for d in dstate)
        norms[length - t] = float(np.mean(np.sqrt(squared)))
    layer.zero_grad()
    return norms


@dataclass
class VanishingConfig:
    length: int = 100
    hidden: int = 64
    batch: int = 64
    train_length: int = 50
    train_steps: int = 1500
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("length", "hidden", "batch", "train_length",
                                     "train_steps"))


def run_vanishing(config: VanishingConfig, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    x, _ = adding_batch(np.random.default_rng(config.seed + 1), config.batch, config.length)
    train = AddingConfig(hidden=config.hidden, steps=config.train_steps,
                         eval_every=max(1, config.train_steps // 10), seed=config.seed)
    curves, summary = {}, {"config": asdict(config)}
    with MetricsLog(out / "metrics.jsonl") as log:
        for cell in ("rnn", "lstm"):
            untrained = SequenceRegressor(cell, 2, config.hidden,
                                          rng=np.random.default_rng(config.seed))
            trained, rows, _ = train_adding(cell, config.train_length, train,
                                            desc=f"vanishing: train {cell}")
            for when, model in (("init", untrained), ("trained", trained)):
                norms = state_gradient_norms(model.core, x, np.random.default_rng(config.seed))
                curves[f"{cell} {when}"] = norms
                for distance, norm in enumerate(norms):
                    log.write(cell=cell, when=when, distance=distance, grad_norm=float(norm))
                summary[f"{cell}_{when}"] = {
                    f"norm_at_{d}": float(norms[d]) for d in (1, 10, 25, 50, config.length)
                    if d <= config.length}
            summary[f"{cell}_trained"]["adding_test_mse"] = rows[-1]["test_mse"] if rows else None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, norms in curves.items():
        ax.semilogy(np.arange(len(norms)), norms, label=label,
                    linestyle="-" if "trained" in label else "--")
    ax.set_xlabel("distance T - t (steps)")
    ax.set_ylabel("mean || d(u . h_T) / d state_t ||")
    ax.set_title(f"gradient reaching step t from step T = {config.length}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "vanishing.png", dpi=120)
    plt.close(fig)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_summary(out, summary)
    return summary

