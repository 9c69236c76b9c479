"""Training records: metrics appended to a JSON-lines file as they happen, and plotted to PNG.

Every line is flushed at once, so a run that is stopped keeps everything it measured.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
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


def resumed_metrics(path: str | Path, keep: Callable[[dict], bool]) -> MetricsLog:
    """The log of a resumed run: only the rows ``keep`` accepts, the ones measured up to the
    checkpoint's step; what a stopped run logged after its last checkpoint is dropped, since the
    resumed run logs those steps again. The kept rows are rewritten atomically (a temporary file,
    renamed), so a crash here loses nothing. Every trainer's ``--resume`` comes through here."""
    path = Path(path)
    if path.exists():
        kept = [row for row in read_metrics(path) if keep(row)]
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        os.replace(temporary, path)
    return MetricsLog(path, append=True)


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
                hline: tuple[float, str] | None = None, logx: bool = False,
                labels: dict[str, str] | None = None,
                marks: Sequence[tuple[float, float, str]] = ()) -> Path:
    """One line per metric in ``ys`` against ``x``, skipping rows that lack it; saves a PNG.
    ``labels`` renames a metric in the legend (to say how it was measured); each of ``marks``,
    (x, y, label), is one point drawn apart, e.g. a final figure measured another way."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ys:
        points = [(r[x], r[key]) for r in rows
                  if key in r and r[key] is not None and math.isfinite(r[key])]
        if points:
            xs, vs = zip(*points, strict=True)
            ax.plot(xs, vs, label=(labels or {}).get(key, key),
                    marker="." if len(points) < 40 else None)
    for mark_x, mark_y, label in marks:
        ax.plot([mark_x], [mark_y], marker="*", markersize=12, linestyle="none", label=label)
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
