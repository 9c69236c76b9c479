"""The spiking-transformer experiment: phase 7's char GPT with GELU against the same GPT whose MLP
activation is a leaky integrate-and-fire neuron run for T = 1, 4 and 8 steps.

Every (condition, seed) trains from the same initial weights and on the same batches as the ANN
of that seed (one ``torch.manual_seed`` builds the model, the spiking one swaps only the
activation), with phase 7's optimizer, schedule, clipping, batches and loss estimate. Measured per
run: the validation-loss curve and final value, and, over the evaluation batches of the
validation split, each layer's firing rate, its dead neurons (never fired on any of those tokens
at any step) and the synaptic operations of each ``c_proj`` against the ANN's
multiply-accumulates, with their energy (``spiking_gpt``'s constants; memory traffic not
counted). The run directory gets ``runs/<condition>/seed<k>/summary.json``, ``results.json``,
``results.md`` and two PNG plots. A finished run is not trained again; a stopped one starts over
(a small run takes seconds to minutes).
Notes: ``phase_09_modern/notes/21_spiking_transformer.md``.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from phase_07_gpt.dataset import TokenData, build_tokenizer, get_batch, read_text  # noqa: E402
from phase_07_gpt.device import pick_runtime  # noqa: E402
from phase_07_gpt.experiment import SIZES as PHASE7_SIZES  # noqa: E402
from phase_07_gpt.experiment import cell, mean_spread  # noqa: E402
from phase_07_gpt.model import GPT  # noqa: E402
from phase_07_gpt.presets import TrainConfig  # noqa: E402
from phase_07_gpt.train import (  # noqa: E402
    clip_gradients,
    estimate_loss,
    lr_at,
    make_optimizer,
)
from phase_09_modern.models.spiking_gpt import (  # noqa: E402
    ENERGY_PER_ACCUMULATE_PJ,
    ENERGY_PER_MAC_PJ,
    LIFConfig,
    SpikeMonitor,
    linear_macs_per_token,
    spiking_gpt,
)


@dataclass(frozen=True)
class Condition:
    label: str
    lif: LIFConfig | None  # None: the ANN baseline (GELU)


CONDITIONS = (
    Condition("ANN (GELU)", None),
    *(Condition(f"SNN T={t}", LIFConfig(steps=t)) for t in (1, 4, 8)),
)
# small: phase 7's small experiment size (4 layers, width 64, context 32, 300 steps);
# full: phase 7's shakespeare-char preset (4 layers, width 128, context 64), 2000 steps.
SIZES: dict[str, TrainConfig] = {
    "small": replace(PHASE7_SIZES["small"], device="cpu"),
    "full": replace(PHASE7_SIZES["full"], threads=1, device="cpu"),
}


def build_model(config: TrainConfig, vocab_size: int, lif: LIFConfig | None) -> GPT:
    torch.manual_seed(config.seed)
    model_config = config.model_config(vocab_size)
    return GPT(model_config) if lif is None else spiking_gpt(model_config, lif)


@torch.no_grad()
def measure_spikes(model: GPT, data: TokenData, config: TrainConfig, device) -> list[dict]:
    """``SpikeMonitor``'s per-layer summary over ``eval_iters`` validation batches (the same
    batches every run: their own generator)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(config.seed + 1)
    with SpikeMonitor(model) as monitor:
        for _ in range(config.eval_iters):
            x, _ = get_batch(data.val, config.batch_size, config.block_size, generator, device)
            model(x)
    model.train(was_training)
    return monitor.summary()


def train_condition(config: TrainConfig, lif: LIFConfig | None, data: TokenData) -> dict:
    """Phase 7's training step (AdamW groups, warmup + cosine, global-norm clipping, its batches
    and loss estimate) on the ANN or the spiking GPT; returns the run's measurements."""
    if config.threads:
        torch.set_num_threads(config.threads)
    runtime = pick_runtime(config.device, config.dtype)
    model = build_model(config, data.tokenizer.vocab_size, lif).to(runtime.device)
    optimizer = make_optimizer(model, config, runtime.device)
    named_params = list(model.named_parameters())
    generator = torch.Generator().manual_seed(config.seed)
    curve = {"step": [], "train_loss": [], "val_loss": []}
    began = time.perf_counter()

    def evaluate(step: int) -> None:
        losses = estimate_loss(model, data, config, runtime)
        curve["step"].append(step)
        curve["train_loss"].append(losses["train"])
        curve["val_loss"].append(losses["val"])

    for step in range(config.max_iters):
        if step % config.eval_interval == 0:
            evaluate(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        x, y = get_batch(data.train, config.batch_size, config.block_size, generator,
                         runtime.device)
        _, loss = model(x, y)
        if not torch.isfinite(loss):
            raise RuntimeError(f"the training loss is {loss.item()} at step {step}")
        loss.backward()
        clip_gradients(named_params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    evaluate(config.max_iters)
    seconds = time.perf_counter() - began
    cproj_macs = config.n_layer * 4 * config.n_embd * config.n_embd
    layers = measure_spikes(model, data, config, runtime.device) if lif is not None else []
    return {"final_train_loss": curve["train_loss"][-1], "final_val_loss": curve["val_loss"][-1],
            "curve": curve, "layers": layers, "seconds": round(seconds, 1),
            "model_macs_per_token": linear_macs_per_token(model),
            "cproj_macs_per_token": cproj_macs,
            "cproj_sops_per_token": sum(r["sops"] for r in layers) if layers else None}


def spiking_table(runs: list[dict]) -> list[dict]:
    """Per condition, over its seeds: val loss, the gap to the ANN of the same seed, the firing
    rate of each layer, the dead fraction (over all layers' units), SOPs and MACs of the c_proj
    layers per token, and their energy."""
    ann = {r["seed"]: r["final_val_loss"] for r in runs if r["condition"] == CONDITIONS[0].label}
    rows = []
    for condition in CONDITIONS:
        mine = [r for r in runs if r["condition"] == condition.label]
        if not mine:
            continue
        n_layers = len(mine[0]["layers"])
        macs = mine[0]["cproj_macs_per_token"]
        sops = mean_spread([r["cproj_sops_per_token"] for r in mine])
        rows.append({
            "condition": condition.label, "runs": len(mine),
            "val_loss": mean_spread([r["final_val_loss"] for r in mine]),
            "gap_to_ann": mean_spread([r["final_val_loss"] - ann[r["seed"]] for r in mine
                                        if r["seed"] in ann]),
            "firing_rate": [mean_spread([r["layers"][i]["firing_rate"] for r in mine])
                            for i in range(n_layers)],
            "dead_fraction": mean_spread([statistics.fmean(x["dead_fraction"]
                                                            for x in r["layers"])
                                           for r in mine] if n_layers else []),
            "sops": sops, "macs": macs,
            "energy_snn_pj": None if sops[0] is None else sops[0] * ENERGY_PER_ACCUMULATE_PJ,
            "energy_ann_pj": macs * ENERGY_PER_MAC_PJ,
            "model_macs": mine[0]["model_macs_per_token"],
            "seconds": mean_spread([r["seconds"] for r in mine]),
        })
    return rows


def spiking_markdown(result: dict) -> str:
    base = result["base"]
    lines = [
        "# spiking transformer: GELU vs LIF in the MLP, Tiny Shakespeare chars", "",
        f"size {result['size']} ({base['n_layer']} layers, width {base['n_embd']}, context "
        f"{base['block_size']}, {base['max_iters']} steps), {result['seeds']} seeds, "
        f"{result['seconds']} s; neuron {result['lif']}; mean ± standard deviation over seeds. "
        "Gap: val loss minus the same seed's ANN. SOPs and MACs are per token, summed over the "
        "c_proj layers (the only layers whose input is spikes); energy at 0.9 pJ per accumulate "
        "and 4.6 pJ per MAC, memory traffic not counted.", "",
        "| condition | val loss | gap to ANN | firing rate per layer | dead neurons | "
        "c_proj SOPs / token | c_proj MACs / token | c_proj energy (pJ / token) | s per run |",
        "|---|---|---|---|---|---|---|---|---|"]
    for row in result["table"]:
        rates = ", ".join(f"{m:.3f}" for m, _ in row["firing_rate"]) or "—"
        energy = (f"{row['energy_snn_pj']:.0f} (ANN {row['energy_ann_pj']:.0f})"
                  if row["energy_snn_pj"] is not None else f"{row['energy_ann_pj']:.0f}")
        lines.append(
            f"| {row['condition']} | {cell(row['val_loss'])} | {cell(row['gap_to_ann'])} | "
            f"{rates} | {cell(row['dead_fraction'])} | {cell(row['sops'], 0)} | "
            f"{row['macs']} | {energy} | {cell(row['seconds'], 0)} |")
    model_macs = result["table"][0]["model_macs"]
    lines += ["", f"For scale: every Linear layer of the model together does {model_macs} MACs "
              "per token (the c_proj layers are "
              f"{result['table'][0]['macs'] / model_macs:.0%} of them); the attention products "
              "are not in either count."]
    return "\n".join(lines) + "\n"


def plot_spiking(runs: list[dict], out: Path) -> None:
    """val_loss.png: mean validation loss per condition (band: ± one standard deviation over
    seeds); firing_rate.png: firing rate per layer for each spiking condition."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for condition in CONDITIONS:
        mine = [r for r in runs if r["condition"] == condition.label]
        if not mine:
            continue
        steps = mine[0]["curve"]["step"]
        values = np.array([r["curve"]["val_loss"] for r in mine])
        mean, spread = values.mean(0), values.std(0)
        ax.plot(steps, mean, label=condition.label)
        ax.fill_between(steps, mean - spread, mean + spread, alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats / char)")
    ax.set_title("GELU vs LIF neuron in the MLP")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "val_loss.png", dpi=110)
    plt.close(fig)

    spiking = [c for c in CONDITIONS if c.lif is not None
               and any(r["condition"] == c.label for r in runs)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(spiking), 1)
    for i, condition in enumerate(spiking):
        mine = [r for r in runs if r["condition"] == condition.label]
        rates = np.array([[x["firing_rate"] for x in r["layers"]] for r in mine])
        layers = np.arange(rates.shape[1])
        ax.bar(layers + i * width, rates.mean(0), width, yerr=rates.std(0), capsize=3,
               label=condition.label)
    ax.set_xlabel("block")
    ax.set_ylabel("firing rate (spikes per neuron per step)")
    ax.set_title("MLP firing rate per block, validation tokens")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "firing_rate.png", dpi=110)
    plt.close(fig)


def run_spiking(out: str | Path, *, size: str = "small", seeds: int = 3,
                overrides: dict | None = None, log=print) -> dict:
    """Train every (condition, seed) not yet finished; write the table and the plots.
    ``overrides`` change fields of the size's ``TrainConfig`` (tests use a tiny one)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    base = replace(SIZES[size], **(overrides or {}))
    out = Path(out)
    text = read_text(base.data)
    tokenizer = build_tokenizer(base.tokenizer, text)
    data = TokenData.from_text(text, tokenizer, base.block_size)
    began = time.perf_counter()
    runs = []
    for index, condition in enumerate(CONDITIONS):
        for seed in range(seeds):
            config = replace(base, seed=seed)
            stamp = {"train": config.to_dict(),
                     "lif": asdict(condition.lif) if condition.lif else None}
            run_dir = out / "runs" / f"{index}" / f"seed{seed}"
            summary_file = run_dir / "summary.json"
            saved = json.loads(summary_file.read_text()) if summary_file.exists() else None
            if saved is not None and saved["config"] == stamp:
                summary = saved
            else:
                summary = {"config": stamp, **train_condition(config, condition.lif, data)}
                run_dir.mkdir(parents=True, exist_ok=True)
                summary_file.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            runs.append({"condition": condition.label, "seed": seed, **summary})
            rates = ", ".join(f"{x['firing_rate']:.3f}" for x in summary["layers"])
            log(f"{condition.label}, seed {seed}: val {summary['final_val_loss']:.4f}"
                + (f", firing rates {rates}" if rates else "") + f" ({summary['seconds']} s)")
    result = {"experiment": "spiking", "size": size, "seeds": seeds, "base": base.to_dict(),
              "lif": asdict(CONDITIONS[-1].lif) | {"steps": "T"},
              "seconds": round(time.perf_counter() - began, 1),
              "table": spiking_table(runs), "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(spiking_markdown(result), encoding="utf-8")
    plot_spiking(runs, out)
    return result
