"""``python -m phase_07_gpt.train [--preset NAME] [--field value ...] [--out DIR] [--resume]``

Trains a GPT on a text corpus, as nanoGPT's ``train.py`` does, with the parts a careful run
needs made explicit and tested:
- AdamW (Loshchilov & Hutter 2017) with two parameter groups: matrices and embeddings decay,
  biases and norm gains do not (decaying a gain towards 0 would switch a feature off);
- learning rate: linear warmup, then a cosine from ``lr`` down to ``min_lr``;
- gradient accumulation: each of ``grad_accum`` micro-batches adds loss / grad_accum, so the
  summed gradient is the gradient of the mean over the whole batch;
- global-norm clipping (Pascanu et al. 2013): the norm over all gradients before clipping is
  logged every step, with the norm of each layer's gradients;
- every ``eval_interval`` steps: the mean loss over ``eval_iters`` fixed batches of each split,
  activation statistics of the residual stream and the attention entropy of each head, then an
  atomic checkpoint; ``--resume`` continues from it and reproduces an uninterrupted run's losses
  exactly on a CPU;
- a non-finite loss stops the run with a message and keeps the last good checkpoint.
Notes: ``phase_07_gpt/notes/03_the_trainer.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from phase_01_nn.checkpoint import (
    NonFiniteError,
    check_same_data,
    data_fingerprint,
    refuse_non_finite,
    remove_stale_temporaries,
)
from phase_01_nn.command_line import plain_help, run_command
from phase_01_nn.config_options import config_from_args, preset_parser
from phase_01_nn.metrics import (
    MetricsLog,
    plot_curves,
    read_metrics,
    resumed_metrics,
    write_summary,
)
from phase_04_attention.attention import attention_entropy
from phase_07_gpt.checkpoint import (
    CHECKPOINT_FILE,
    check_same_model,
    load_checkpoint,
    save_checkpoint,
)
from phase_07_gpt.dataset import TokenData, build_tokenizer, get_batch, read_text, save_tokenizer
from phase_07_gpt.device import Runtime, flops_per_token, peak_flops, pick_runtime
from phase_07_gpt.loggers import open_logger
from phase_07_gpt.model import GPT
from phase_07_gpt.muon import MuonWithAdamW, muon_param_groups
from phase_07_gpt.presets import PRESETS, TrainConfig

METRICS_FILE = "metrics.jsonl"


class NonFiniteLossError(NonFiniteError):
    """The loss became inf or NaN; ``step`` says when."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup over ``warmup_iters`` steps, then a cosine from ``lr`` to ``min_lr`` at
    ``max_iters``."""
    if step < config.warmup_iters:
        return config.lr * (step + 1) / (config.warmup_iters + 1)
    span = max(config.max_iters - config.warmup_iters, 1)
    progress = min((step - config.warmup_iters) / span, 1.0)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The schedule's rate on every group, times the group's ``lr_scale`` (the Muon group's
    ``muon_lr / lr``; 1 for AdamW's groups)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def make_optimizer(model: GPT, config: TrainConfig, device: torch.device
                   ) -> torch.optim.Optimizer:
    """AdamW with weight decay on tensors of 2 or more dimensions (matmul weights, embeddings)
    and none on vectors (biases, LayerNorm weights). With ``optimizer="muon"``, the blocks'
    matrices take Muon's step instead (``phase_07_gpt/muon.py``)."""
    if config.optimizer == "muon":
        groups = muon_param_groups(model, lr=config.lr, muon_lr=config.muon_lr,
                                   weight_decay=config.weight_decay)
        return MuonWithAdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2),
                             fused=device.type == "cuda")


def layer_of(name: str) -> str:
    """The group a parameter's gradient norm is reported under: "embed", "h.3" or "ln_f"."""
    parts = name.split(".")
    if parts[:2] == ["transformer", "h"]:
        return f"h.{parts[2]}"
    if parts[1] in ("wte", "wpe"):
        return "embed"
    return parts[1] if parts[0] == "transformer" else parts[0]


def clip_gradients(named_params: list[tuple[str, torch.nn.Parameter]], max_norm: float
                   ) -> tuple[float, dict[str, float]]:
    """Scale all gradients by min(1, max_norm / ||g||) with ||g|| the norm over all of them
    (``max_norm`` = 0: no clipping). Returns ||g|| before clipping and the norm of each layer's
    gradients (``layer_of``)."""
    grads = [(name, p.grad) for name, p in named_params if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.float()) for _, g in grads])
    total = torch.linalg.vector_norm(norms)
    if max_norm > 0:
        scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for _, g in grads:
            g.mul_(scale.to(g.dtype))
    squares: dict[str, float] = {}
    for (name, _), norm in zip(grads, norms.tolist(), strict=True):
        squares[layer_of(name)] = squares.get(layer_of(name), 0.0) + norm * norm
    return total.item(), {layer: math.sqrt(value) for layer, value in squares.items()}


def accumulate_gradients(model: torch.nn.Module, batches: list, runtime: Runtime,
                         scaler: torch.amp.GradScaler) -> float:
    """Backward through each (x, y) micro-batch's loss / len(batches): the gradients add up to
    the gradient of the mean loss over all of them. Returns that mean loss."""
    total = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for x, y in batches:
        with runtime.autocast():
            _, loss = model(x, y)
        loss = loss / len(batches)
        scaler.scale(loss).backward()
        total += loss.detach()
    return total.item()


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, data: TokenData, config: TrainConfig,
                  runtime: Runtime) -> dict[str, float]:
    """The mean loss over ``eval_iters`` batches of each split, the same batches every time
    (their own generator), so successive evaluations differ only by the model."""
    model.eval()
    result = {}
    for split, tokens in (("train", data.train), ("val", data.val)):
        generator = torch.Generator().manual_seed(config.seed + 1)
        losses = torch.zeros(config.eval_iters)
        for i in range(config.eval_iters):
            x, y = get_batch(tokens, config.batch_size, config.block_size, generator,
                             runtime.device)
            with runtime.autocast():
                losses[i] = model(x, y)[1].float()
        result[split] = losses.mean().item()
    model.train()
    return result


@torch.no_grad()
def analyse(model: GPT, x: torch.Tensor) -> dict[str, list]:
    """Per block: mean, std and max |value| of the residual stream it outputs, and each head's
    mean attention entropy in nats (phase 4's ``attention_entropy``)."""
    was_training = model.training
    model.eval()
    seen = model.inspect(x)
    model.train(was_training)
    streams = [s.float() for s in seen["streams"]]
    return {
        "act_mean": [s.mean().item() for s in streams],
        "act_std": [s.std().item() for s in streams],
        "act_max": [s.abs().max().item() for s in streams],
        "attn_entropy": [attention_entropy(w.float().cpu().numpy()).tolist()
                         for w in seen["attention"]],
    }


def _rng_state(device: torch.device, generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "data": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}


def _restore_rng(state: dict, device: torch.device, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if device.type == "cuda" and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def measured_before(step: int):
    """Which metrics rows a run resumed at ``step`` keeps: the training rows of the steps before
    it and the evaluation at it (the checkpoint is written after that evaluation)."""
    return lambda row: row["step"] < step or (row["step"] == step and "val_loss" in row)


def train(config: TrainConfig, out: str | Path, *, resume: bool = False,
          stop_after: int | None = None, quiet: bool = False, preset: str | None = None,
          model_factory: Callable[[int], torch.nn.Module] | None = None) -> dict:
    """Train as the module docstring says; returns the summary (also ``out/summary.json``).
    ``stop_after`` ends the run after that many steps, as an interruption would (tests).
    ``model_factory(vocab_size)``, if given, builds the model instead of ``GPT`` (phase 9 trains
    its LLaMA this way); it must offer GPT's ``forward(idx, targets)``, ``num_params()`` and
    ``inspect(idx)``."""
    out = Path(out)
    ckpt_path = out / CHECKPOINT_FILE
    remove_stale_temporaries(ckpt_path)
    saved = load_checkpoint(ckpt_path) if resume else None
    if saved is not None:
        check_same_model(saved["config"], config, ckpt_path)
    if config.threads:
        torch.set_num_threads(config.threads)
    runtime = pick_runtime(config.device, config.dtype, config.compile)
    if runtime.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    text = read_text(config.data)
    if saved is not None and "data_sha256" in saved:
        check_same_data(ckpt_path, {"data_tokens": len(text), **saved}, text)
    tokenizer = build_tokenizer(config.tokenizer, text)
    data = TokenData.from_text(text, tokenizer, config.block_size)
    if saved is not None and saved["vocab_size"] != tokenizer.vocab_size:
        raise ValueError(f"the checkpoint {ckpt_path} has a vocabulary of {saved['vocab_size']} "
                         f"tokens; this corpus and tokenizer give {tokenizer.vocab_size}")

    torch.manual_seed(config.seed)
    model = (model_factory(tokenizer.vocab_size) if model_factory is not None
             else GPT(config.model_config(tokenizer.vocab_size))).to(runtime.device)
    optimizer = make_optimizer(model, config, runtime.device)
    scaler = runtime.grad_scaler()
    generator = torch.Generator().manual_seed(config.seed)
    start, best_val = 0, math.inf
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        _restore_rng(saved["rng"], runtime.device, generator)
        start, best_val = saved["step"], saved["best_val_loss"]
    step_model = torch.compile(model) if runtime.compile else model
    named_params = list(model.named_parameters())

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"preset": preset, **config.to_dict()},
                                                indent=2) + "\n", encoding="utf-8")
    save_tokenizer(tokenizer, config.tokenizer, out)
    log = resumed_metrics(out / METRICS_FILE, measured_before(start)) if resume else MetricsLog(
        out / METRICS_FILE)
    probe, _ = get_batch(data.val, min(config.batch_size, 4), config.block_size,
                         torch.Generator().manual_seed(config.seed + 2), runtime.device)
    tokens_per_step = config.batch_size * config.grad_accum * config.block_size
    peak = peak_flops(runtime.device)
    flops_per_step = flops_per_token(model.num_params(), config.n_layer, config.n_embd,
                                     config.block_size) * tokens_per_step
    mirror = open_logger(config.logger, out, {"preset": preset, **config.to_dict()}, start)
    if mirror and saved is not None and "eval" in saved:  # re-log what the purge removed
        mirror.log("eval", start, {"train_loss": saved["eval"]["train"],
                                   "val_loss": saved["eval"]["val"]})
    step_times: list[float] = []
    clipped_steps, last = 0, {}
    end = config.max_iters if stop_after is None else min(config.max_iters, start + stop_after)
    bar = tqdm(total=config.max_iters, initial=start, disable=True if quiet else None,
               desc="train", unit="step")

    def evaluate_and_save(step: int) -> None:
        nonlocal best_val, last
        losses = estimate_loss(step_model, data, config, runtime)
        best_val = min(best_val, losses["val"])
        last = {"train_loss": losses["train"], "val_loss": losses["val"]}
        log.write(step=step, **last, **analyse(model, probe))
        if mirror:
            mirror.log("eval", step, last)
        refuse_non_finite(ckpt_path, [], losses, step=step)
        if config.save_checkpoints:
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "step": step, "best_val_loss": best_val,
                "rng": _rng_state(runtime.device, generator), "config": config.to_dict(),
                "eval": losses, "data_sha256": data_fingerprint(text),
                "vocab_size": tokenizer.vocab_size})
        if not quiet:
            bar.write(f"step {step}: train {losses['train']:.4f}, val {losses['val']:.4f}")

    try:
        for step in range(start, end):
            if step % config.eval_interval == 0 and not (resume and step == start):
                evaluate_and_save(step)
            began = time.perf_counter()
            lr = lr_at(step, config)
            set_learning_rate(optimizer, lr)
            batches = [get_batch(data.train, config.batch_size, config.block_size, generator,
                                 runtime.device) for _ in range(config.grad_accum)]
            loss_value = accumulate_gradients(step_model, batches, runtime, scaler)
            if not math.isfinite(loss_value):
                kept = (f"the last good checkpoint {ckpt_path} is kept"
                        if ckpt_path.exists() else "no checkpoint was written")
                raise NonFiniteLossError(
                    f"the training loss is {loss_value} at step {step} (lr {lr:.3g}); training "
                    f"stopped and {kept}. Lower --lr, raise --warmup-iters or turn on "
                    f"--grad-clip, then --resume or start again", step)
            scaler.unscale_(optimizer)
            norm, layer_norms = clip_gradients(named_params, config.grad_clip)
            clipped = config.grad_clip > 0 and norm > config.grad_clip
            clipped_steps += clipped
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step_times.append(time.perf_counter() - began)
            log.write(step=step, loss=loss_value, lr=lr, grad_norm=norm, clipped=bool(clipped),
                      layer_grad_norms=layer_norms)
            if mirror:
                mirror.log("train", step, {"loss": loss_value, "lr": lr, "grad_norm": norm})
            bar.update(1)
            if step % 10 == 0:
                postfix = {"loss": f"{loss_value:.3f}",
                           "tok/s": f"{tokens_per_step / step_times[-1]:.0f}"}
                if peak:
                    postfix["mfu"] = f"{flops_per_step / step_times[-1] / peak:.1%}"
                bar.set_postfix(postfix)
        if end == config.max_iters:
            evaluate_and_save(config.max_iters)
    finally:
        bar.close()
        log.close()
        if mirror:
            mirror.close()

    steady = step_times[5:] or step_times
    # A resumed run that had already finished runs no steps and has no speed to report.
    seconds_per_step = statistics.median(steady) if steady else None
    summary = {
        "preset": preset, "steps": end, "params": model.num_params(),
        "final_train_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
        "best_val_loss": best_val if math.isfinite(best_val) else None,
        "train_seconds": round(sum(step_times), 2),
        "tokens_per_second": round(tokens_per_step / seconds_per_step, 1) if steady else None,
        "mfu": flops_per_step / seconds_per_step / peak if peak and steady else None,
        "fraction_clipped": clipped_steps / max(len(step_times), 1),
        "device": str(runtime.device),
        "autocast": str(runtime.autocast_dtype) if runtime.autocast_dtype else "float32",
    }
    write_summary(out, summary)
    plot_run(out)
    return summary


def plot_run(out: str | Path) -> None:
    """``loss.png`` (per-step and evaluated losses) and ``grad_norm.png`` from the metrics."""
    out = Path(out)
    rows = read_metrics(out / METRICS_FILE)
    plot_curves(rows, out / "loss.png", ys=["loss", "train_loss", "val_loss"],
                title="GPT training loss (nats/token)")
    plot_curves(rows, out / "grad_norm.png", ys=["grad_norm"], ylabel="global grad norm",
                title="gradient norm before clipping")


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """A preset's values as the defaults, each overridable by its ``--option``."""
    parser = preset_parser(argv, prog="python -m phase_07_gpt.train",
                           description=plain_help(__doc__.split("\n\n")[1]),
                           config_class=TrainConfig,
                           presets=PRESETS, default="shakespeare-char",
                           run_root="runs/phase_07")
    args = parser.parse_args(argv)
    return config_from_args(args, TrainConfig), args


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    config, args = parse_config(argv)
    out = args.out or Path("runs") / "phase_07" / args.preset
    summary = train(config, out, resume=args.resume, preset=args.preset)
    speed = (f"{summary['train_seconds']} s, {summary['tokens_per_second']:.0f} tokens/s"
             if summary["tokens_per_second"] is not None else "no steps left to run")
    print(f"val loss {summary['final_val_loss']:.4f} (best {summary['best_val_loss']:.4f}) "
          f"after {summary['steps']} steps, {speed}; outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

