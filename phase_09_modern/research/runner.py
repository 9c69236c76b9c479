"""``python -m phase_09_modern.experiment NAME [--size small|full] [--seeds N] [--only LABEL ...]``

The research experiments, each a grid of conditions trained with several seeds. A run directory
gets one sub-directory per (condition, seed), ``results.json``, ``results.md`` (mean and
standard deviation over seeds) and PNG plots. A finished run is not trained again and a stopped
one resumes from its checkpoint, so an interrupted grid loses at most one evaluation interval.

- ``extrapolation``: learned, sinusoidal, RoPE, ALiBi and no position signal in one char GPT
  trained at one context and evaluated at two and four times it; measured: the loss at each
  length and position, and the attention entropy
  (notes ``phase_09_modern/notes/23_positional_extrapolation.md``);
- ``grokking``: a + b mod 113 as in Nanda et al. (2023), and the interventions: weight decay 0
  vs 1, decay toward the initial weights, dropout 0.1, Gaussian weight noise (sigma 0.01), and
  the training fraction from 0.3 to 0.8; measured: steps to 99% train and validation accuracy
  (notes ``phase_09_modern/notes/20_grokking.md``);
- ``spiking``: phase 7's GPT with its MLP activation replaced by leaky integrate-and-fire
  neurons, T = 1, 4, 8, against the GELU model; measured: the validation-loss gap, firing
  rates, dead neurons, synaptic operations and energy
  (notes ``phase_09_modern/notes/21_spiking_transformer.md``);
- ``failure-modes``: a trained char model's repetition loops against temperature, calibration
  (ECE, reliability diagram, temperature scaling), loss on other kinds of text, and confident
  errors (notes ``phase_09_modern/notes/22_failure_modes.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from phase_01_nn.command_line import plain_help, run_command
from phase_01_nn.metrics import read_metrics  # noqa: E402
from phase_07_gpt.experiment import cell, mean_spread  # noqa: E402
from phase_09_modern.research.extrapolation import (  # noqa: E402
    extrapolation_markdown,
    run_extrapolation,
)
from phase_09_modern.research.failure_modes.experiment import (  # noqa: E402
    failure_markdown,
    run_failure_modes,
)
from phase_09_modern.research.grokking import (  # noqa: E402
    CHECKPOINT_FILE,
    METRICS_FILE,
    size_config,
    train_grokking,
)
from phase_09_modern.research.spiking import run_spiking, spiking_markdown  # noqa: E402


@dataclass(frozen=True)
class Condition:
    label: str
    overrides: dict


GROKKING_CONDITIONS = (
    Condition("baseline (weight decay 1)", {}),
    Condition("weight decay 0", {"weight_decay": 0.0}),
    Condition("decay toward the initial weights", {"decay_to_init": True}),
    Condition("dropout 0.1", {"dropout": 0.1}),
    Condition("weight noise 0.01", {"weight_noise": 0.01}),
    *(Condition(f"fraction {f:.1f}", {"train_fraction": f}) for f in (0.4, 0.5, 0.6, 0.7, 0.8)),
)
EXPERIMENTS = ("extrapolation", "grokking", "spiking", "failure-modes")


def run_grokking(out: str | Path, *, size: str = "small", seeds: int = 3,
                 only: list[str] | None = None, overrides: dict | None = None,
                 log=print, quiet: bool = False) -> dict:
    """Train every (condition, seed) not yet finished; write the table and the plots."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    labels = [c.label for c in GROKKING_CONDITIONS]
    unknown = [name for name in only or [] if name not in labels]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; choose from {labels}")
    base = size_config(size, **(overrides or {}))
    conditions = distinct_conditions(
        [c for c in GROKKING_CONDITIONS if not only or c.label in only], base, log)
    out = Path(out)
    op_text = {"add": "a + b", "div": "a / b"}[base.op]
    began = time.perf_counter()
    runs = []
    for condition in conditions:
        index = next(i for i, c in enumerate(GROKKING_CONDITIONS)
                     if c.overrides == condition.overrides)
        for seed in range(seeds):
            run_dir = out / "runs" / f"{index:02d}" / f"seed{seed}"
            summary_file = run_dir / "summary.json"
            config = replace(base, seed=seed, **condition.overrides)
            if summary_file.exists() and json.loads(summary_file.read_text())["config"] == \
                    config.__dict__:
                summary = json.loads(summary_file.read_text())
            else:
                summary = train_grokking(config, run_dir, quiet=quiet,
                                         resume=(run_dir / CHECKPOINT_FILE).exists())
            rows = read_metrics(run_dir / METRICS_FILE)
            runs.append({"condition": condition.label, "seed": seed, **summary,
                         "curve": {k: [r[k] for r in rows] for k in
                                   ("step", "train_acc", "val_acc", "weight_norm")}})
            log(f"{condition.label}, seed {seed}: train 99% {reached(summary['train_99_at'])}, "
                f"val 99% {reached(summary['val_99_at'])}, final val acc "
                f"{summary['final_val_acc']:.3f} ({summary['seconds']} s)")
    result = {"experiment": "grokking", "task": f"{op_text} mod {base.p}", "size": size,
              "seeds": seeds, "base": base.__dict__,
              "seconds": round(time.perf_counter() - began, 1),
              "table": grokking_table(conditions, runs), "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(grokking_markdown(result), encoding="utf-8")
    plot_grokking(conditions, runs, out)
    return result


def distinct_conditions(conditions: list[Condition], base, log=print) -> list[Condition]:
    """The conditions with those that repeat the baseline's config left out (at the small
    size the baseline trains on 60% of the table, so "fraction 0.6" is the baseline itself:
    run twice, the second line hid the first on the plot). The baseline's label says which
    conditions it stands for."""
    if not conditions or conditions[0] is not GROKKING_CONDITIONS[0]:
        return conditions
    same = [c for c in conditions[1:] if replace(base, **c.overrides) == base]
    if not same:
        return conditions
    names = ", ".join(c.label for c in same)
    log(f"{names}: the same config as the baseline at this size, run once as the baseline")
    baseline = Condition(f"{conditions[0].label} = {names}", conditions[0].overrides)
    return [baseline] + [c for c in conditions[1:] if c not in same]


def reached(step: int | None) -> str:
    """'at step 1200', or 'not reached' (instead of printing None)."""
    return "not reached" if step is None else f"at step {step}"


def grokking_table(conditions, runs: list[dict]) -> list[dict]:
    """Per condition: steps to 99% train and val accuracy (mean, spread over the seeds that got
    there, and how many did), the final val accuracy and the key Fourier frequencies."""
    rows = []
    for condition in conditions:
        mine = [r for r in runs if r["condition"] == condition.label]
        rows.append({
            "condition": condition.label, "runs": len(mine),
            "train_99_at": mean_spread([r["train_99_at"] for r in mine]),
            "val_99_at": mean_spread([r["val_99_at"] for r in mine]),
            "grokked": sum(r["val_99_at"] is not None for r in mine),
            "final_val_acc": mean_spread([r["final_val_acc"] for r in mine]),
            "key_frequencies": [len(r["key_frequencies"]) for r in mine],
            "max_steps": max(r["config"]["max_steps"] for r in mine),
        })
    return rows


def grokking_markdown(result: dict) -> str:
    lines = [f"# grokking: {result.get('task', 'a + b mod p')}, steps to 99% accuracy", "",
             f"size {result['size']}, training fraction {result['base']['train_fraction']}, "
             f"{result['seeds']} seeds, {result['seconds']} s; mean ± "
             "standard deviation over the seeds that reached 99% (the count is in 'grokked')", "",
             "| condition | train 99% at step | val 99% at step | grokked | final val acc "
             "| frequencies holding 90% of the embedding |", "|---|---|---|---|---|---|"]
    for row in result["table"]:
        lines.append(f"| {row['condition']} | {cell(row['train_99_at'], 0)} | "
                     f"{cell(row['val_99_at'], 0)} | {row['grokked']}/{row['runs']} "
                     f"(of {row['max_steps']} steps) | {cell(row['final_val_acc'], 3)} | "
                     f"{row['key_frequencies']} |")
    return "\n".join(lines) + "\n"


def plot_grokking(conditions, runs: list[dict], out: Path) -> None:
    """accuracy.png: train (dashed) and val (solid) accuracy on a log step axis, seed 0 of each
    condition; spectrum.png: the Fourier spectrum of the baseline's embeddings at the end."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    for i, condition in enumerate(conditions):
        first = next((r for r in runs if r["condition"] == condition.label), None)
        if first is None:
            continue
        steps = np.maximum(first["curve"]["step"], 1)
        ax.plot(steps, first["curve"]["train_acc"], "--", color=colours[i % 10], alpha=0.7)
        ax.plot(steps, first["curve"]["val_acc"], "-", color=colours[i % 10],
                label=condition.label)
    ax.set_xscale("log")
    ax.set_xlabel("step (log scale)")
    ax.set_ylabel("accuracy (dashed: train, solid: validation)")
    ax.set_title("grokking: seed 0 of each condition")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    first = runs[0]
    spectrum = np.asarray(first["spectrum"])
    ax.bar(np.arange(len(spectrum)), spectrum)
    ax.set_xlabel("frequency k (cycles over the p residues)" if first["config"]["op"] == "add"
                  else "frequency k (cycles over the p - 1 residues in discrete-log order)")
    ax.set_ylabel("share of the embedding's squared norm")
    ax.set_title(f"Fourier spectrum of the token embeddings ({first['condition']}, seed "
                 f"{first['seed']}); key frequencies {first['key_frequencies']}")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "spectrum.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_09_modern.experiment",
                                     description=plain_help(__doc__.split("\n\n")[1]))
    parser.add_argument("name", choices=EXPERIMENTS)
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                        help="grokking: run only these conditions (their labels, quoted); "
                             "extrapolation: only these encodings")
    parser.add_argument("--op", choices=("add", "div"), default="add",
                        help="grokking: a + b (Nanda et al.) or a / b (Power et al.); the full "
                             "size's division is mod 97 on half the table, as in Power et "
                             "al.'s Figure 1")
    parser.add_argument("--fraction", type=float, default=None,
                        help="grokking: the baseline's training fraction (the 'fraction' "
                             "conditions keep their own)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="override the size's number of training steps")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default runs/phase_09/experiments/<name>-<size>)")
    args = parser.parse_args(argv)
    suffix = ""
    if args.name == "grokking":
        suffix = ("-div" if args.op == "div" else "") + (
            f"-fraction{args.fraction:g}" if args.fraction is not None else "")
    out = args.out or (Path("runs") / "phase_09" / "experiments"
                       / f"{args.name}-{args.size}{suffix}")
    if args.name == "grokking":
        overrides = {} if args.max_steps is None else {"max_steps": args.max_steps}
        if args.op == "div":
            overrides.update({"op": "div"} if args.size == "small" else
                             {"op": "div", "p": 97, "train_fraction": 0.5})
        if args.fraction is not None:
            overrides["train_fraction"] = args.fraction
        result = run_grokking(out, size=args.size, seeds=args.seeds, only=args.only,
                              overrides=overrides)
        table = grokking_markdown(result)
    elif args.name == "extrapolation":
        if args.op != "add" or args.fraction is not None:
            raise ValueError("--op and --fraction apply to the grokking experiment")
        overrides = {} if args.max_steps is None else {"max_iters": args.max_steps}
        result = run_extrapolation(out, size=args.size, seeds=args.seeds, only=args.only,
                                   overrides=overrides)
        table = extrapolation_markdown(result)
    else:
        if args.only or args.op != "add" or args.fraction is not None:
            raise ValueError("--only, --op and --fraction apply to the grokking experiment")
        overrides = {} if args.max_steps is None else {"max_iters": args.max_steps}
        run, markdown = ((run_spiking, spiking_markdown) if args.name == "spiking"
                         else (run_failure_modes, failure_markdown))
        result = run(out, size=args.size, seeds=args.seeds, overrides=overrides)
        table = markdown(result)
    print(table)
    print(f"outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
