"""``python -m phase_07_gpt.experiment NAME [--size small|full] [--seeds N] [--out DIR]``

Controlled comparisons: one base config, a grid of conditions that each change named factors,
every condition trained with several seeds. The run directory gets one training run per
(condition, seed), ``results.json`` with every run's measurements, ``results.md`` with the table
(mean ± standard deviation over seeds) and PNG plots.

Measured per run: final train and val loss, loss spikes, divergence, fraction of steps clipped,
the largest pre-clip gradient norm, the mean gradient norm of each layer, activation statistics
of the residual stream after each block and the attention entropy of each head (at the end).

- ``norm-placement``: Pre-LN vs Post-LN, with and without warmup, at a normal and a high
  learning rate (Xiong et al. 2020, ``papers/2020-xiong-pre-ln.md``);
- ``clipping``: global-norm clipping at 1.0 on vs off, at the learning rate x1, x3 and x10;
- ``optimizer``: AdamW against Muon for the blocks' matrices (``phase_07_gpt/muon.py``).
Notes: ``phase_07_gpt/notes/04_experiments.md`` and ``05_muon.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from phase_01_nn.command_line import UserError, plain_help, run_command
from phase_01_nn.metrics import read_metrics
from phase_07_gpt.presets import TrainConfig
from phase_07_gpt.train import METRICS_FILE, NonFiniteLossError, train

SPIKE_NATS = 0.3  # a step's loss this far above the median of the 20 before it is a spike
SPIKE_WINDOW = 20


@dataclass(frozen=True)
class Condition:
    label: str
    overrides: dict


@dataclass(frozen=True)
class Experiment:
    name: str
    question: str
    conditions: tuple[Condition, ...]


SIZES: dict[str, TrainConfig] = {
    # Minutes on a CPU for the whole grid: a 4-layer, width-64 char model for 300 steps.
    "small": TrainConfig(block_size=32, n_layer=4, n_head=4, n_embd=64, batch_size=16,
                         max_iters=300, warmup_iters=30, lr=1e-3, min_lr=1e-4,
                         eval_interval=100, eval_iters=10, save_checkpoints=False, threads=1),
    # The shakespeare-char preset's model and schedule, for a GPU or a patient CPU.
    "full": TrainConfig(eval_interval=250, eval_iters=50, save_checkpoints=False),
}


def _norm_placement() -> Experiment:
    conditions = []
    for pre_ln in (True, False):
        for warmup in (True, False):
            for lr_name, lr in (("normal", 1.0), ("high", 10.0)):
                label = (f"{'Pre' if pre_ln else 'Post'}-LN, "
                         f"{'warmup' if warmup else 'no warmup'}, lr {lr_name}")
                conditions.append(Condition(label, {"pre_ln": pre_ln, "lr_scale": lr,
                                                    "warmup": warmup}))
    return Experiment("norm-placement", "Does Post-LN need warmup where Pre-LN does not?",
                      tuple(conditions))


def _clipping() -> Experiment:
    conditions = [Condition(f"clip {'on' if clip else 'off'}, lr x{scale:g}",
                            {"grad_clip": 1.0 if clip else 0.0, "lr_scale": scale})
                  for scale in (1.0, 3.0, 10.0) for clip in (True, False)]
    return Experiment("clipping", "Does global-norm clipping prevent spikes and divergence "
                      "as the learning rate grows?", tuple(conditions))


def _optimizer() -> Experiment:
    conditions = (Condition("AdamW", {"optimizer": "adamw"}),
                  Condition("Muon (blocks' matrices) + AdamW", {"optimizer": "muon"}))
    return Experiment("optimizer", "Does Muon for the blocks' matrices beat AdamW at the same "
                      "steps?", conditions)


EXPERIMENTS = {e.name: e for e in (_norm_placement(), _clipping(), _optimizer())}


def condition_config(base: TrainConfig, overrides: dict, seed: int) -> TrainConfig:
    """``lr_scale`` multiplies lr and min_lr; ``warmup`` False sets warmup_iters to 0; every
    other key is a TrainConfig field."""
    values = dict(overrides)
    scale = values.pop("lr_scale", 1.0)
    warmup = values.pop("warmup", True)
    return replace(base, lr=base.lr * scale, min_lr=base.min_lr * scale,
                   warmup_iters=base.warmup_iters if warmup else 0, seed=seed, **values)


def count_spikes(losses: list[float]) -> int:
    """Steps whose loss exceeds the median of the ``SPIKE_WINDOW`` before it by ``SPIKE_NATS``."""
    return sum(1 for t in range(SPIKE_WINDOW, len(losses))
               if losses[t] - statistics.median(losses[t - SPIKE_WINDOW:t]) > SPIKE_NATS)


def measure_run(out: Path, diverged_at: int | None) -> dict:
    """The measurements of one run, read back from its metrics file."""
    rows = read_metrics(out / METRICS_FILE)
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "val_loss" in r]
    layers = sorted(steps[0]["layer_grad_norms"], key=_layer_order) if steps else []
    final_val = evals[-1]["val_loss"] if evals and diverged_at is None else None
    return {
        "steps": len(steps),
        "losses": [r["loss"] for r in steps],
        "grad_norms": [r["grad_norm"] for r in steps],
        "eval_steps": [r["step"] for r in evals],
        "val_losses": [r["val_loss"] for r in evals],
        "final_train_loss": evals[-1]["train_loss"] if final_val is not None else None,
        "final_val_loss": final_val,
        "diverged": diverged_at is not None or (final_val is not None
                                                and final_val >= evals[0]["val_loss"]),
        "diverged_at": diverged_at,
        "spikes": count_spikes([r["loss"] for r in steps]),
        "fraction_clipped": sum(r["clipped"] for r in steps) / max(len(steps), 1),
        "max_grad_norm": max((r["grad_norm"] for r in steps), default=None),
        "layer_grad_norms": {layer: statistics.fmean(r["layer_grad_norms"][layer] for r in steps)
                             for layer in layers},
        "final_activations": {key: evals[-1][key] for key in ("act_mean", "act_std", "act_max")}
        if evals else {},
        "final_attention_entropy": evals[-1]["attn_entropy"] if evals else [],
    }


def _layer_order(name: str) -> tuple:
    if name == "embed":
        return (0, 0)
    if name.startswith("h."):
        return (1, int(name[2:]))
    return (2, 0)


def run_experiment(name: str, out: str | Path, *, size: str = "small", seeds: int = 3,
                   base: TrainConfig | None = None, log=print) -> dict:
    """Train every (condition, seed) of experiment ``name``; write results, table and plots."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    experiment, base = EXPERIMENTS[name], base or SIZES[size]
    out = Path(out)
    began = time.perf_counter()
    results = []
    for index, condition in enumerate(experiment.conditions):
        for seed in range(seeds):
            config = condition_config(base, condition.overrides, seed)
            run_dir = out / "runs" / f"{index:02d}" / f"seed{seed}"
            diverged_at = None
            try:
                train(config, run_dir, quiet=True)
            except NonFiniteLossError as error:
                diverged_at = error.step
            result = measure_run(run_dir, diverged_at)
            results.append({"condition": condition.label, "seed": seed,
                            "lr": config.lr, **result})
            log(f"{condition.label}, seed {seed}: val {result['final_val_loss']}, "
                f"spikes {result['spikes']}, diverged {result['diverged']}")
    summary = {"experiment": name, "question": experiment.question, "size": size,
               "seeds": seeds, "base": base.to_dict(),
               "seconds": round(time.perf_counter() - began, 1),
               "table": results_table(experiment, results), "runs": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown_table(summary), encoding="utf-8")
    plot_experiment(experiment, results, out)
    return summary


def mean_spread(values: list[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of the finite values that are not None; the spread of
    one value is 0, and (None, None) when there is none. Phase 9's experiments use it too."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def results_table(experiment: Experiment, results: list[dict]) -> list[dict]:
    """One row per condition: mean and standard deviation over seeds of each measurement."""
    rows = []
    for condition in experiment.conditions:
        runs = [r for r in results if r["condition"] == condition.label]
        row = {"condition": condition.label, "runs": len(runs),
               "diverged": sum(r["diverged"] for r in runs)}
        for key in ("final_val_loss", "final_train_loss", "spikes", "fraction_clipped",
                    "max_grad_norm"):
            row[key] = mean_spread([r[key] for r in runs])
        rows.append(row)
    return rows


def cell(pair: tuple, digits: int = 3) -> str:
    """A table cell "mean ± spread", or "—" for (None, None)."""
    mean, spread = pair
    return "—" if mean is None else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def markdown_table(summary: dict) -> str:
    lines = [f"# {summary['experiment']}: {summary['question']}", "",
             f"size {summary['size']}, {summary['seeds']} seeds, {summary['seconds']} s; "
             f"mean ± standard deviation over seeds (diverged runs left out of the losses)", "",
             "| condition | val loss | train loss | diverged | spikes | fraction clipped "
             "| max grad norm |", "|---|---|---|---|---|---|---|"]
    for row in summary["table"]:
        lines.append(f"| {row['condition']} | {cell(row['final_val_loss'])} | "
                     f"{cell(row['final_train_loss'])} | {row['diverged']}/{row['runs']} | "
                     f"{cell(row['spikes'], 1)} | {cell(row['fraction_clipped'], 2)} | "
                     f"{cell(row['max_grad_norm'], 2)} |")
    return "\n".join(lines) + "\n"


def _by_condition(experiment: Experiment, results: list[dict]):
    for condition in experiment.conditions:
        yield condition.label, [r for r in results if r["condition"] == condition.label]


def _mean_curve(curves: list[list[float]]) -> np.ndarray:
    """The mean over seeds, step by step, as far as the shortest run went."""
    length = min(len(c) for c in curves)
    return np.mean([c[:length] for c in curves], axis=0) if length else np.array([])


def plot_experiment(experiment: Experiment, results: list[dict], out: Path) -> None:
    """loss.png, grad_norm.png (per step, mean over seeds), layers.png (per-layer gradient
    norm, final activation std and max, attention entropy; mean over seeds)."""
    styles = ["-", "--", ":", "-."]
    for key, filename, ylabel in (("losses", "loss.png", "training loss (nats/char)"),
                                  ("grad_norms", "grad_norm.png", "grad norm before clipping")):
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, (label, runs) in enumerate(_by_condition(experiment, results)):
            curve = _mean_curve([r[key] for r in runs])
            if len(curve):
                smooth = np.convolve(curve, np.ones(5) / 5, mode="valid") if len(curve) > 5 \
                    else curve
                ax.plot(smooth, label=label, linestyle=styles[i % len(styles)])
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{experiment.name}: {ylabel} (mean over seeds, 5-step average)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / filename, dpi=110)
        plt.close(fig)

    panels = [("layer grad norm (mean over steps)", lambda r: list(r["layer_grad_norms"].values()),
               lambda r: list(r["layer_grad_norms"])),
              ("activation std (end)", lambda r: r["final_activations"].get("act_std", []), None),
              ("activation max |x| (end)", lambda r: r["final_activations"].get("act_max", []),
               None),
              ("attention entropy, mean over heads (nats)",
               lambda r: [statistics.fmean(h) for h in r["final_attention_entropy"]], None)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (title, values, names) in zip(axes.flat, panels, strict=True):
        for i, (label, runs) in enumerate(_by_condition(experiment, results)):
            kept = [values(r) for r in runs if values(r)]
            if kept:
                ax.plot(_mean_curve(kept), marker="o", label=label,
                        linestyle=styles[i % len(styles)])
                if names is not None:
                    ax.set_xticks(range(len(kept[0])), names(runs[0]), fontsize=7)
        ax.set_title(title)
        ax.set_xlabel("layer" if names else "block")
        ax.grid(alpha=0.3)
    axes.flat[0].set_yscale("log")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "layers.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_07_gpt.experiment",
                                     description=plain_help(__doc__.split("\n\n")[1]))
    parser.add_argument("name", choices=sorted(EXPERIMENTS))
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default runs/phase_07/experiments/<name>-<size>)")
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / "phase_07" / "experiments" / f"{args.name}-{args.size}"
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    summary = run_experiment(args.name, out, size=args.size, seeds=args.seeds)
    print(markdown_table(summary))
    print(f"outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
