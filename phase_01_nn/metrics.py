"""Training records: metrics appended to a JSON-lines file as they happen, and plotted to PNG.

Every line is flushed at once, so a run that is stopped keeps everything it measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


class MetricsLog:
    """``log.write(step=10, train_loss=2.3)`` appends one JSON object per line to ``path``."""

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = read_metrics(self.path) if append and self.path.exists() else []
        self._file = open(self.path, "a" if append else "w", encoding="utf-8")

    def write(self, **row) -> None:
        self.rows.append(row)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_summary(out: str | Path, summary: dict) -> Path:
    """A run's final figures as ``<out>/summary.json``, indented for reading."""
    path = Path(out) / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def read_metrics(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def plot_curves(rows: Sequence[dict], path: str | Path, *, x: str = "step",
                ys: Sequence[str], title: str = "", ylabel: str = "loss",
                hline: tuple[float, str] | None = None, logx: bool = False) -> Path:
    """One line per metric in ``ys`` against ``x``, skipping rows that lack it; saves a PNG."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ys:
        points = [(r[x], r[key]) for r in rows
                  if key in r and r[key] is not None and math.isfinite(r[key])]
        if points:
            xs, vs = zip(*points, strict=True)
            ax.plot(xs, vs, label=key, marker="." if len(points) < 40 else None)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle="--", linewidth=1, label=hline[1])
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
