"""``python -m phase_02_sequence adding``: the adding problem (Hochreiter and Schmidhuber 1997)
at T = 50 and T = 100, LSTM against vanilla RNN, with the predict-the-mean baseline (MSE 1/6).
Notes: ``phase_02_sequence/notes/03_lstm.md``, section 3.5.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from phase_01_nn.clipping import clip_grad_norm  # noqa: E402
from phase_01_nn.config_options import check_config  # noqa: E402
from phase_01_nn.linear import Linear  # noqa: E402
from phase_01_nn.losses import (  # noqa: E402
    mse_backward,
    mse_forward,
)
from phase_01_nn.metrics import (  # noqa: E402
    MetricsLog,
    plot_curves,
    write_summary,
)
from phase_01_nn.module import Module  # noqa: E402
from phase_01_nn.optimizers import Adam  # noqa: E402
from phase_01_nn.schedule import warmup_cosine_lr  # noqa: E402
from phase_02_sequence.stacked import recurrent_layer  # noqa: E402

ADDING_BASELINE = 1.0 / 6.0  # Var(u + v) for u, v ~ U(0, 1): the MSE of always predicting 1


def adding_batch(rng: np.random.Generator, batch: int, length: int, dtype=np.float32):
    """x: (B, T, 2), channel 0 values ~ U(0, 1), channel 1 marks two positions, one in each
    half; y: (B, 1), the sum of the two marked values."""
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2, got {length}")
    values = rng.random((batch, length))
    half = length // 2
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, length, size=batch)
    markers = np.zeros((batch, length))
    rows = np.arange(batch)
    markers[rows, first] = markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(dtype)
    y = (values[rows, first] + values[rows, second])[:, None].astype(dtype)
    return x, y


class SequenceRegressor(Module):
    """A recurrent layer and a linear head on its last hidden state: (B, T, D) -> (B, 1)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, *,
                 rng: np.random.Generator, dtype=np.float32) -> None:
        super().__init__()
        self.core = self.add_module("core", recurrent_layer(cell, input_size, hidden_size,
                                                            rng=rng, dtype=dtype))
        self.head = self.add_module("head", Linear(hidden_size, 1, rng=rng, init="xavier",
                                                   dtype=dtype))
        self._shape = None

    def forward(self, x):
        hs, _ = self.core.forward(x)
        self._shape = hs.shape
        return self.head.forward(hs[:, -1])

    def backward(self, dout):
        dhs = np.zeros(self._shape, dtype=dout.dtype)
        dhs[:, -1] = self.head.backward(dout)
        return self.core.backward(dhs)[0]


@dataclass
class AddingConfig:
    lengths: str = "50,100"
    cells: str = "lstm,rnn"
    hidden: int = 64
    batch_size: int = 64
    steps: int = 3000
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    clip: float = 1.0
    eval_every: int = 100
    n_test: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("hidden", "batch_size", "steps", "lr", "clip", "eval_every",
                                     "n_test"),
                     non_negative=("min_lr", "warmup_steps"))


def train_adding(cell: str, length: int, config: AddingConfig, *, log: MetricsLog | None = None,
                 desc: str = "") -> tuple[SequenceRegressor, list[dict], bool]:
    """Train one model on the adding problem; returns it, its eval rows, and whether Ctrl-C
    stopped it."""
    rng = np.random.default_rng(config.seed)
    test_x, test_y = adding_batch(np.random.default_rng(config.seed + 10_000), config.n_test,
                                  length)
    model = SequenceRegressor(cell, 2, config.hidden, rng=rng)
    optimizer = Adam(model.parameters(), lr=config.lr)
    rows, window, interrupted = [], [], False
    bar = tqdm(range(config.steps), desc=desc or f"adding {cell} T={length}", unit="step",
               mininterval=0.5)
    try:
        for step in bar:
            optimizer.lr = warmup_cosine_lr(step, max_lr=config.lr, min_lr=config.min_lr,
                                            warmup_steps=min(config.warmup_steps, config.steps),
                                            total_steps=config.steps)
            x, y = adding_batch(rng, config.batch_size, length)
            loss, cache = mse_forward(model.forward(x), y)
            model.zero_grad()
            model.backward(mse_backward(np.ones((), np.float32), cache)[0])
            clip_grad_norm(model.gradients(), config.clip)
            optimizer.step(model.gradients())
            window.append(float(loss))
            if (step + 1) % config.eval_every == 0 or step == config.steps - 1:
                test_mse = float(mse_forward(model.forward(test_x), test_y)[0])
                row = {"cell": cell, "T": length, "step": step + 1,
                       "train_mse": float(np.mean(window)), "test_mse": test_mse}
                rows.append(row)
                if log is not None:
                    log.write(**row)
                bar.set_postfix(test_mse=f"{test_mse:.4f}")
                window = []
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    return model, rows, interrupted


def _parse_list(text: str, kind=str) -> list:
    items = [kind(item.strip()) for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"expected a comma-separated list, got {text!r}")
    return items


def run_adding(config: AddingConfig, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary: dict = {"baseline_mse": ADDING_BASELINE, "runs": {}, "config": asdict(config)}
    all_rows = []
    with MetricsLog(out / "metrics.jsonl") as log:
        for length in _parse_list(config.lengths, int):
            for cell in _parse_list(config.cells):
                run_started = time.perf_counter()
                _, rows, interrupted = train_adding(cell, length, config, log=log)
                all_rows += rows
                summary["runs"][f"{cell}_T{length}"] = {
                    "final_test_mse": rows[-1]["test_mse"] if rows else None,
                    "best_test_mse": min((r["test_mse"] for r in rows), default=None),
                    "steps": rows[-1]["step"] if rows else 0,
                    "seconds": round(time.perf_counter() - run_started, 1)}
                if interrupted:
                    break
            else:
                continue
            break
    for length in _parse_list(config.lengths, int):
        merged: dict[int, dict] = {}
        for row in all_rows:
            if row["T"] == length:
                merged.setdefault(row["step"], {"step": row["step"]})[row["cell"]] = row["test_mse"]
        plot_curves(sorted(merged.values(), key=lambda r: r["step"]), out / f"adding_T{length}.png",
                    ys=_parse_list(config.cells), ylabel="test MSE",
                    title=f"adding problem, T = {length}", hline=(ADDING_BASELINE, "predict 1"))
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_summary(out, summary)
    return summary

