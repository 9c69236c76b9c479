"""``python -m phase_08_train_124m.train [--preset gpt2-124m|tiny] [--field value ...] --out DIR``
or ``torchrun --standalone --nproc_per_node=N -m phase_08_train_124m.train ...``

Trains GPT-2 Small from token shards, as nanoGPT's and llm.c's ``train_gpt2`` do, on one
process or many (``distributed.py``), with phase 7's model and parts:
- one optimizer step = ``total_batch_tokens`` tokens: every process runs ``grad_accum``
  micro-batches, each adding loss / grad_accum to the gradients; DDP averages the gradients
  over the processes once, in the backward of the last micro-step (``no_sync`` before it);
- phase 7's AdamW groups, warmup-then-cosine schedule and global-norm clipping;
- on CUDA: bfloat16 autocast, TF32 matmuls for what stays float32, fused AdamW, optional
  ``torch.compile``, flash attention through SDPA (phase 7's model); on MPS and the CPU, float32
  and none of the CUDA settings;
- the loss, the validation loss and HellaSwag are averaged (all-reduced) over processes;
  rank 0 alone writes the metrics, the progress bar, samples and checkpoints;
- every ``eval_interval`` steps: validation loss, HellaSwag if its file is present, and an
  atomic checkpoint holding model, optimizer, step, every process's RNG state and the loader's
  position; ``--resume`` continues from it exactly;
- a non-finite loss stops the run with a message; the last good checkpoint is kept.
Notes: ``phase_08_train_124m/notes/02_the_124m_recipe.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from phase_01_nn.checkpoint import (
    CheckpointError,
    refuse_non_finite,
    remove_stale_temporaries,
)
from phase_01_nn.command_line import UserError, plain_help, run_command
from phase_01_nn.config_options import config_from_args, preset_parser
from phase_01_nn.corpus import corpus_path, sha256_of
from phase_01_nn.metrics import MetricsLog, resumed_metrics, write_summary
from phase_03_tokenization.bpe import BPETokenizer
from phase_07_gpt.checkpoint import read_checkpoint, save_checkpoint
from phase_07_gpt.device import flops_per_token, pick_runtime
from phase_07_gpt.generate import generate
from phase_07_gpt.model import GPT
from phase_07_gpt.train import (
    NonFiniteLossError,
    clip_gradients,
    lr_at,
    make_optimizer,
    measured_before,
    plot_run,
    set_learning_rate,
)
from phase_08_train_124m import hellaswag
from phase_08_train_124m.distributed import (
    Distributed,
    all_reduce_mean,
    all_reduce_sum,
    gather_objects,
    setup_distributed,
    teardown_distributed,
)
from phase_08_train_124m.loader import ShardLoader
from phase_08_train_124m.mfu import device_peak_flops, model_flops_utilisation
from phase_08_train_124m.prepare import META_FILE, read_meta
from phase_08_train_124m.presets import MODEL_FIELDS, PRESETS, RunConfig, grad_accum_steps

CHECKPOINT_FILE = "ckpt.pt"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"


def load_run_state(path: Path, config: RunConfig) -> dict:
    """A phase 8 checkpoint, read without running code from it, checked against ``config``."""
    if not path.is_file() and not path.with_name(f"{path.stem}.previous{path.suffix}").is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}; train without --resume "
                                f"first, or give the --out of the run to continue")
    state = read_checkpoint(path)
    missing = {"model", "optimizer", "step", "loader", "rng", "config"} - set(state)
    if missing:
        raise CheckpointError(f"{path} is not a phase 8 checkpoint (it lacks {sorted(missing)})")
    current = config.to_dict()
    state["config"] = {"optimizer": "adamw", **state["config"]}  # from before the option
    differ = [f"{name}: checkpoint {state['config'].get(name)!r}, this run {current[name]!r}"
              for name in (*MODEL_FIELDS, "total_batch_tokens", "optimizer")
              if state["config"].get(name) != current[name]]
    if differ:
        raise ValueError(f"the checkpoint {path} was made with another config; "
                         + "; ".join(differ))
    return state


def shards_fingerprint(config: RunConfig) -> str | None:
    """The SHA-256 of the shard directory's ``meta.json``, which lists every shard with its
    token count and the settings it was prepared with (None for llm.c's shards, which have
    none): a resume on other shards is caught without reading gigabytes of tokens."""
    meta = Path(config.data_dir) / META_FILE
    return sha256_of(meta) if meta.is_file() else None


def check_data(config: RunConfig) -> None:
    """The shards' tokenizer must fit the model's vocabulary (when prepare's meta is there;
    llm.c's shards have none, and the loader checks each batch instead)."""
    if not (Path(config.data_dir) / META_FILE).is_file():
        return
    meta = read_meta(config.data_dir)
    if meta["vocab_size"] > config.vocab_size:
        raise ValueError(f"the shards in {config.data_dir} use a vocabulary of "
                         f"{meta['vocab_size']} tokens, larger than the model's vocab_size "
                         f"{config.vocab_size}")


def _to_device(batch, device: torch.device):
    x, y = batch
    if device.type == "cuda":
        return (x.pin_memory().to(device, non_blocking=True),
                y.pin_memory().to(device, non_blocking=True))
    return x.to(device), y.to(device)


def train_step(model, loader: ShardLoader, grad_accum: int, runtime, scaler,
               dist: Distributed) -> float:
    """Forward and backward over ``grad_accum`` micro-batches; DDP's gradient all-reduce runs
    only in the last backward. Returns the step's loss averaged over all processes."""
    total = torch.zeros((), dtype=torch.float32, device=runtime.device)
    for micro in range(grad_accum):
        x, y = _to_device(loader.next_batch(), runtime.device)
        last = micro == grad_accum - 1
        with model.no_sync() if dist.enabled and not last else contextlib.nullcontext():
            with runtime.autocast():
                _, loss = model(x, y)
            loss = loss / grad_accum
            scaler.scale(loss).backward()
        total += loss.detach().float()
    return all_reduce_mean(total, dist)


@torch.no_grad()
def validation_loss(model, loader: ShardLoader, iters: int, runtime, dist: Distributed) -> float:
    """The mean loss over the first ``iters`` micro-batches of the validation stream, split
    over the processes (``iters // world_size`` each, at least one): the same tokens at every
    evaluation, and the same ones for any number of processes when it divides ``iters``."""
    iters = max(1, iters // dist.world_size)
    model.eval()
    loader.reset()
    total = torch.zeros((), dtype=torch.float32, device=runtime.device)
    for _ in range(iters):
        x, y = _to_device(loader.next_batch(), runtime.device)
        with runtime.autocast():
            total += model(x, y)[1].float() / iters
    model.train()
    return all_reduce_mean(total, dist)


def _rng_state(device: torch.device) -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else
            torch.zeros(0, dtype=torch.uint8)}


def _restore_rng(states: list, dist: Distributed, device: torch.device) -> None:
    if len(states) != dist.world_size:
        print(f"rank {dist.rank}: the checkpoint holds the RNG states of {len(states)} "
              f"processes, this run has {dist.world_size}; dropout draws start afresh "
              f"(the data position is restored all the same)")
        return
    state = states[dist.rank]
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"].numel():
        torch.cuda.set_rng_state(state["cuda"], device)


class Sampler:
    """Text from the model at an interval, on rank 0: GPT-2's tokenizer, a fixed seed."""

    def __init__(self, config: RunConfig) -> None:
        self.tokenizer = BPETokenizer.from_gpt2(corpus_path("gpt2-vocab"),
                                                corpus_path("gpt2-encoder"))
        self.config = config

    def sample(self, model: GPT, device: torch.device) -> str:
        start = torch.tensor([[self.tokenizer.special_tokens["<|endoftext|>"]]], device=device)
        ids = generate(model, start, self.config.sample_tokens, temperature=1.0, top_k=50,
                       seed=self.config.seed)
        ids = ids[0, 1:].clamp_max(self.tokenizer.vocab_size - 1).tolist()
        return self.tokenizer.decode(ids)


def train(config: RunConfig, out: str | Path, *, resume: bool = False,
          stop_after: int | None = None, quiet: bool = False, preset: str | None = None,
          env=None) -> dict:
    """Train as the module docstring says; returns the summary (also ``out/summary.json``).
    ``stop_after`` ends the run after that many steps, as an interruption would (tests).
    ``env`` (default ``os.environ``) carries torchrun's RANK, LOCAL_RANK and WORLD_SIZE."""
    dist, device_name = setup_distributed(config.device, env)
    finished = False
    try:
        summary = _train(config, Path(out), dist, device_name, resume=resume,
                         stop_after=stop_after, quiet=quiet or not dist.is_main, preset=preset)
        finished = True
        return summary
    finally:
        teardown_distributed(dist, finished=finished)


def _train(config: RunConfig, out: Path, dist: Distributed, device_name: str, *, resume: bool,
           stop_after: int | None, quiet: bool, preset: str | None) -> dict:
    if config.threads:
        torch.set_num_threads(config.threads)
    runtime = pick_runtime(device_name, config.dtype, config.compile)
    device = runtime.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    grad_accum = grad_accum_steps(config.total_batch_tokens, config.micro_batch,
                                  config.block_size, dist.world_size)
    check_data(config)
    loaders = {split: ShardLoader.from_dir(config.data_dir, split, config.micro_batch,
                                           config.block_size, rank=dist.rank,
                                           world_size=dist.world_size,
                                           vocab_size=config.vocab_size)
               for split in ("train", "val")}
    ckpt_path = out / CHECKPOINT_FILE
    if dist.is_main:
        remove_stale_temporaries(ckpt_path)
    saved = load_run_state(ckpt_path, config) if resume else None
    data_sha256 = shards_fingerprint(config)
    if saved is not None and saved.get("data_sha256") not in (None, data_sha256):
        raise UserError(f"{ckpt_path} was trained on other shards than those in "
                        f"{config.data_dir} (their {META_FILE} differs); give the --data-dir "
                        f"it was trained on, or start a new run in another --out directory")
    hellaswag_path = hellaswag.find_hellaswag(config.hellaswag)
    examples = hellaswag.read_examples(hellaswag_path) if hellaswag_path else None
    if examples and config.hellaswag_limit:
        examples = examples[:config.hellaswag_limit]
    sampler = Sampler(config) if dist.is_main and (config.sample_interval or examples) else None

    torch.manual_seed(config.seed)  # the same initial weights on every process
    model = GPT(config.model_config()).to(device)
    optimizer = make_optimizer(model, config, device)
    scaler = runtime.grad_scaler()
    start, best_val = 0, math.inf
    torch.manual_seed(config.seed + 1 + dist.rank)  # each process its own dropout draws
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        loaders["train"].load_state_dict(saved["loader"])
        _restore_rng(saved["rng"], dist, device)
        start, best_val = saved["step"], saved["best_val_loss"]
    step_model = torch.compile(model) if runtime.compile else model
    if dist.enabled:
        step_model = DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None)
    named_params = list(model.named_parameters())

    tokens_per_step = config.total_batch_tokens
    flops_token = flops_per_token(model.num_params(), config.n_layer, config.n_embd,
                                  config.block_size)
    peak = device_peak_flops(device, config.peak_tflops)
    log = None
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(
            {"preset": preset, "world_size": dist.world_size, "grad_accum": grad_accum,
             **config.to_dict()}, indent=2) + "\n", encoding="utf-8")
        log = resumed_metrics(out / METRICS_FILE, measured_before(start)) if resume else \
            MetricsLog(out / METRICS_FILE)
        if not quiet:
            print(f"{model.num_params():,} parameters (N for 6N), {dist.world_size} "
                  f"process(es) x {grad_accum} micro-steps x {config.micro_batch} x "
                  f"{config.block_size} = {tokens_per_step:,} tokens a step on {device}"
                  + ("" if peak else "; MFU is not reported (no peak FLOP/s known for this "
                                      "device; --peak-tflops sets one)"))
            if examples is None:
                print(hellaswag.missing_message())

    step_times: list[float] = []
    last: dict = {}
    end = config.max_iters if stop_after is None else min(config.max_iters, start + stop_after)
    bar = tqdm(total=config.max_iters, initial=start, disable=True if quiet else None,
               desc="train", unit="step")

    def evaluate_and_save(step: int) -> None:
        nonlocal best_val, last
        val = validation_loss(step_model, loaders["val"], config.eval_iters, runtime, dist)
        best_val = min(best_val, val)
        last = {"val_loss": val}
        if examples:
            counts = torch.tensor(hellaswag.evaluate(
                model, examples, sampler_encode, device, rank=dist.rank,
                world_size=dist.world_size), dtype=torch.float64)
            correct, scored = all_reduce_sum(counts.to(device), dist).tolist()
            last["hellaswag"] = correct / scored
        rng = gather_objects(_rng_state(device), dist)
        if dist.is_main:
            log.write(step=step, **last)
            refuse_non_finite(ckpt_path, [], {"val": val}, step=step)
            if config.save_checkpoints:
                save_checkpoint(ckpt_path, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "step": step, "best_val_loss": best_val,
                    "loader": loaders["train"].state_dict(), "rng": rng,
                    "config": config.to_dict(), "world_size": dist.world_size,
                    "data_sha256": data_sha256})
            bar.write(f"step {step}: val loss {val:.4f}" + (
                f", HellaSwag {last['hellaswag']:.4f}" if "hellaswag" in last else ""))

    def write_sample(step: int) -> None:
        text = sampler.sample(model, device)
        with open(out / SAMPLES_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "text": text}) + "\n")
        bar.write(f"step {step} sample: {text!r}")

    sampler_encode = sampler.tokenizer.encode_ordinary if sampler else None
    if examples and not dist.is_main:
        sampler_encode = Sampler(config).tokenizer.encode_ordinary
    try:
        for step in range(start, end):
            if step % config.eval_interval == 0 and not (resume and step == start):
                evaluate_and_save(step)
            if sampler and config.sample_interval and step % config.sample_interval == 0 \
                    and step > 0:
                write_sample(step)
            began = time.perf_counter()
            lr = lr_at(step, config)
            set_learning_rate(optimizer, lr)
            loss = train_step(step_model, loaders["train"], grad_accum, runtime, scaler, dist)
            if not math.isfinite(loss):
                kept = (f"the last good checkpoint {ckpt_path} is kept" if ckpt_path.exists()
                        else "no checkpoint was written")
                raise NonFiniteLossError(
                    f"the training loss is {loss} at step {step} (lr {lr:.3g}); training "
                    f"stopped and {kept}. Lower --lr or raise --warmup-iters, then --resume "
                    f"or start again", step)
            scaler.unscale_(optimizer)
            norm, _ = clip_gradients(named_params, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - began
            step_times.append(seconds)
            row = {"step": step, "loss": loss, "lr": lr, "grad_norm": norm,
                   "ms": round(1000 * seconds, 2),
                   "tokens_per_second": round(tokens_per_step / seconds, 1)}
            if peak:
                row["mfu"] = model_flops_utilisation(flops_token, tokens_per_step / seconds,
                                                     peak, dist.world_size)
            if device.type == "cuda":
                row["memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            if dist.is_main:
                log.write(**row)
                bar.update(1)
                postfix = {"loss": f"{loss:.4f}", "tok/s": f"{row['tokens_per_second']:.0f}"}
                if peak:
                    postfix["mfu"] = f"{row['mfu']:.1%}"
                bar.set_postfix(postfix)
        if end == config.max_iters:
            evaluate_and_save(config.max_iters)
            if sampler and config.sample_interval:
                write_sample(config.max_iters)
    finally:
        bar.close()
        if log is not None:
            log.close()

    steady = step_times[3:] or step_times
    # A resumed run that had already finished runs no steps and has no speed to report.
    seconds_per_step = statistics.median(steady) if steady else None
    tokens_per_second = tokens_per_step / seconds_per_step if steady else None
    summary = {
        "preset": preset, "steps": end, "params": model.num_params(),
        "world_size": dist.world_size, "grad_accum": grad_accum,
        "final_val_loss": last.get("val_loss"), "hellaswag": last.get("hellaswag"),
        "best_val_loss": best_val if math.isfinite(best_val) else None,
        "train_seconds": round(sum(step_times), 2),
        "seconds_per_step": seconds_per_step,
        "tokens_per_second": round(tokens_per_second, 1) if steady else None,
        "flops_per_token": flops_token,
        "mfu": model_flops_utilisation(flops_token, tokens_per_second, peak, dist.world_size)
        if peak and step_times else None,
        "device": str(device),
        "autocast": str(runtime.autocast_dtype) if runtime.autocast_dtype else "float32",
        "compile": runtime.compile,
    }
    if dist.is_main:
        write_summary(out, summary)
        plot_run(out)
    return summary


def parse_config(argv: list[str] | None = None) -> tuple[RunConfig, argparse.Namespace]:
    """A preset's values as the defaults, each overridable by its ``--option``."""
    parser = preset_parser(argv, prog="python -m phase_08_train_124m.train",
                           description=plain_help(__doc__.split("\n\n")[1]),
                           config_class=RunConfig,
                           presets=PRESETS, default="gpt2-124m", run_root="runs/phase_08")
    args = parser.parse_args(argv)
    return config_from_args(args, RunConfig), args


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    config, args = parse_config(argv)
    out = args.out or Path("runs") / "phase_08" / args.preset
    try:
        summary = train(config, out, resume=args.resume, preset=args.preset)
    except KeyboardInterrupt:
        print(f"interrupted; continue from the last checkpoint with the same command and "
              f"--resume (it is in {out}/{CHECKPOINT_FILE})", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":
        mfu = f", MFU {summary['mfu']:.1%}" if summary["mfu"] is not None else ""
        val = summary["final_val_loss"]
        speed = (f"{summary['tokens_per_second']:.0f} tokens/s{mfu}"
                 if summary["tokens_per_second"] is not None else "no steps left to run")
        print((f"val loss {val:.4f} after " if val is not None else "")
              + f"{summary['steps']} steps, {speed}; outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
