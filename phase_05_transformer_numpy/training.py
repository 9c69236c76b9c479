"""Training a GPT on characters: batches, evaluation, checkpoints that resume to the bit, and the
run that the ``train`` command drives.

    batch -> forward (logits, loss) -> backward -> clip -> AdamW step, lr from warmup + cosine

Everything a run depends on is in the checkpoint: parameters, optimizer moments, the step, the
generator's state and the config. Randomness comes from one generator (initialisation, then
batches and dropout masks) so that a resumed run draws exactly what the uninterrupted one would;
evaluation draws its batches from a generator keyed by (seed, step), so it touches nothing.
Notes: ``phase_05_transformer_numpy/notes/06_training_run.md``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phase_01_nn.allocator import keep_freed_memory
from phase_01_nn.checkpoint import (
    LOWER_THE_RATE,
    NonFiniteError,
    check_same_data,
    data_fingerprint,
    load_checkpoint,
    refuse_non_finite,
    remove_stale_temporaries,
    save_checkpoint,
    what_is_kept,
)
from phase_01_nn.clipping import clip_grad_norm
from phase_01_nn.command_line import UserError
from phase_01_nn.config_options import refuse_changes_on_resume
from phase_01_nn.corpus import load_corpus
from phase_01_nn.metrics import MetricsLog, plot_curves, resumed_metrics, write_summary
from phase_01_nn.optimizers import AdamW
from phase_01_nn.schedule import warmup_cosine_lr
from phase_01_nn.vocabulary import CharVocabulary, train_val_split
from phase_02_sequence.char_lm import StopOnInterrupt
from phase_05_transformer_numpy.data_parallel import DataParallel
from phase_05_transformer_numpy.gpt import GPT, GPTConfig, generate
from phase_05_transformer_numpy.presets import TrainConfig

TARGET_VAL_LOSS = 1.88


def get_batch(data: np.ndarray, batch_size: int, block_size: int, rng: np.random.Generator):
    """B random windows of ``data``: x (B, T) and y (B, T) = x shifted by one (nanoGPT's)."""
    if len(data) <= block_size + 1:
        raise ValueError(f"the data has {len(data)} tokens, too few for a context of "
                         f"{block_size} (need more than {block_size + 1})")
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    windows = data[starts[:, None] + np.arange(block_size + 1)]
    return windows[:, :-1], windows[:, 1:]


def model_config(config: TrainConfig, vocab_size: int) -> GPTConfig:
    names = {f.name for f in fields(GPTConfig)} - {"vocab_size"}
    return GPTConfig(vocab_size=vocab_size, **{n: getattr(config, n) for n in names})


class GPTTraining:
    """Model, optimizer, generator and step; ``save``/``load`` resume a run to the bit."""

    def __init__(self, config: TrainConfig, train_ids: np.ndarray, vocab: CharVocabulary, *,
                 workers: int = 1):
        self.config, self.vocab = config, vocab
        self.train_ids = train_ids
        keep_freed_memory()  # each step reallocates what the last one freed: no page faults
        self.rng = np.random.default_rng(config.seed)
        self.model = GPT(model_config(config, len(vocab)), rng=self.rng)
        params = self.model.parameters()
        self.optimizer = AdamW(params, lr=config.lr, betas=(config.beta1, config.beta2),
                               weight_decay=config.weight_decay,
                               no_decay=[n for n, p in params.items() if p.ndim < 2])
        self.step = 0
        get_batch(train_ids, 1, config.block_size, np.random.default_rng(0))  # data long enough
        if workers > config.batch_size:
            raise UserError(f"--workers {workers} is more than the batch of "
                            f"{config.batch_size} sequences: each worker needs one at least")
        self.parallel = DataParallel(self.model, workers)  # workers=1: the plain step

    def lr_at(self, step: int) -> float:
        c = self.config
        return warmup_cosine_lr(step, max_lr=c.lr, min_lr=c.min_lr, warmup_steps=c.warmup_iters,
                                total_steps=c.max_iters)

    def train_step(self) -> tuple[float, float]:
        """One update; returns (loss, gradient norm before clipping). Raises FloatingPointError
        BEFORE the update when the loss or the gradient is not finite."""
        c = self.config
        x, y = get_batch(self.train_ids, c.batch_size, c.block_size, self.rng)
        self.optimizer.lr = self.lr_at(self.step)
        loss = self.parallel.loss_and_gradients(x, y)  # zero_grad, forward, backward
        if not math.isfinite(loss):
            raise FloatingPointError(f"not finite at step {self.step}: the loss became {loss}; "
                                     f"stopped before the update")
        grads = self.model.gradients()
        norm = clip_grad_norm(grads, c.grad_clip)
        if not math.isfinite(norm):
            raise FloatingPointError(f"not finite at step {self.step}: the gradient norm "
                                     f"became {norm}; stopped before the update")
        self.optimizer.step(grads)
        self.step += 1
        return loss, norm

    def estimate_loss(self, ids: np.ndarray, split: int) -> float:
        """Mean loss over ``eval_iters`` random batches, drawn from a generator keyed by
        (seed, step, split) so that evaluating never changes the training run."""
        c = self.config
        rng = np.random.default_rng((c.seed, self.step, split))
        self.model.eval()
        losses = [float(self.model.forward(*get_batch(ids, c.batch_size, c.block_size, rng))[1])
                  for _ in range(c.eval_iters)]
        self.model.train()
        return float(np.mean(losses))

    def save(self, path: str | Path) -> Path:
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays |= {f"optimizer/{k}": v for k, v in self.optimizer.state_dict().items()}
        meta = {"config": asdict(self.config), "vocab": self.vocab.itos, "step": self.step,
                "rng": self.rng.bit_generator.state, "data_tokens": len(self.train_ids),
                "data_sha256": data_fingerprint(self.train_ids)}
        return save_checkpoint(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path, train_ids: np.ndarray, *, workers: int = 1,
             **overrides) -> GPTTraining:
        """The run saved at ``path``; ``train_ids`` must be the data it was trained on.
        ``overrides`` may change fields that do not alter the run so far (``max_iters``...)."""
        arrays, meta = load_checkpoint(path)
        check_same_data(path, meta, train_ids)
        config = TrainConfig(**{**meta["config"], **overrides})
        run = cls(config, train_ids, CharVocabulary(meta["vocab"]), workers=workers)
        run.model.load_state_dict(_under(arrays, "model/"))
        run.optimizer.load_state_dict(_under(arrays, "optimizer/"))
        run.step = meta["step"]
        run.rng.bit_generator.state = meta["rng"]
        return run


def _under(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_model(path: str | Path) -> tuple[GPT, CharVocabulary, TrainConfig]:
    """The trained model of a checkpoint, for sampling, with its vocabulary and config."""
    arrays, meta = load_checkpoint(path)
    config, vocab = TrainConfig(**meta["config"]), CharVocabulary(meta["vocab"])
    model = GPT(model_config(config, len(vocab)), rng=np.random.default_rng(0))
    model.load_state_dict(_under(arrays, "model/"))
    return model, vocab, config


def evaluate_all(model: GPT, ids: np.ndarray, *, batch_size: int = 64) -> float:
    """Mean loss over every token of ``ids`` (but the first), in non-overlapping windows of the
    full context: the deterministic validation number."""
    t = model.config.block_size
    n = (len(ids) - 1) // t
    x, y = ids[:n * t].reshape(n, t), ids[1:n * t + 1].reshape(n, t)
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, n, batch_size):
        _, loss = model.forward(x[start:start + batch_size], y[start:start + batch_size])
        total += float(loss) * len(x[start:start + batch_size])
    model.train(was_training)
    return total / n


def sample_text(model: GPT, vocab: CharVocabulary, prompt: str, length: int,
                rng: np.random.Generator, *, temperature: float = 1.0,
                top_k: int | None = None) -> str:
    """The prompt and ``length`` characters drawn after it. Characters outside the vocabulary
    fail with an error that names them."""
    if not prompt:
        raise ValueError("the prompt is empty; give at least one character to start from")
    ids = vocab.encode(prompt)[None]
    out = generate(model, ids, length, rng, temperature=temperature, top_k=top_k)
    return vocab.decode(out[0])


# What ``--resume`` may change: what acts only on the steps still to come (the optimiser's
# settings, the schedule's length, the batch size) and what is only measured or printed. The
# model's shape, the seed (the generator's state is restored instead) and the corpus cannot.
RESUMABLE_CHANGES = {"max_iters", "lr", "min_lr", "warmup_iters", "weight_decay", "beta1",
                     "beta2", "grad_clip", "batch_size", "eval_interval", "eval_iters",
                     "log_interval", "sample_chars"}


def check_batch_fits(config: TrainConfig, vocab_size: int) -> None:
    """The largest arrays of a step are the logits (B, T, V) and each block's attention
    weights (B, H, T, T), kept for the backward pass, in float32. A context or batch so large
    that they alone exceed the machine's memory is an error naming the sizes, before any work."""
    floats = config.batch_size * config.block_size * (
        vocab_size + config.n_layer * config.n_head * config.block_size)
    needed = 4 * floats
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise UserError(f"--batch-size {config.batch_size} with --block-size "
                        f"{config.block_size} needs at least {needed / 2**30:,.1f} GiB for the "
                        f"logits and attention weights alone; this machine has "
                        f"{available / 2**30:,.1f} GiB. Lower --block-size or --batch-size")


def run_training(config: TrainConfig, out: Path, *, resume: bool = False,
                 data_path: str | None = None, text: str | None = None,
                 given: dict | None = None, workers: int = 1) -> dict:
    """Train to ``config.max_iters`` (or continue ``out/checkpoint.npz``), with a progress bar,
    metrics in ``out/metrics.jsonl``, checkpoints, a loss plot and a sample. ``given``: the
    options set on the command line; a resume takes up those in ``RESUMABLE_CHANGES`` and
    refuses the others (without ``given``, a resume takes ``config.max_iters``). ``workers``:
    threads that split each batch (``data_parallel.py``); the run is the same up to rounding."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = load_corpus(config.dataset, data_path) if text is None else text
    vocab = CharVocabulary.from_text(text)
    train_ids, val_ids = train_val_split(vocab.encode(text))
    checkpoint = out / "checkpoint.npz"
    remove_stale_temporaries(checkpoint)
    if resume:
        overrides = {"max_iters": config.max_iters} if given is None else {
            name: getattr(config, name) for name in given if name in RESUMABLE_CHANGES}
        run = GPTTraining.load(checkpoint, train_ids, workers=workers, **overrides)
        refuse_changes_on_resume(given or {}, asdict(run.config), allowed=RESUMABLE_CHANGES,
                                 checkpoint=checkpoint)
        print(f"resumed from {checkpoint} at step {run.step}")
    else:
        get_batch(train_ids, 1, config.block_size, np.random.default_rng(0))  # long enough
        check_batch_fits(config, len(vocab))
        run = GPTTraining(config, train_ids, vocab, workers=workers)
    c = run.config
    tokens_per_step = c.batch_size * c.block_size
    print(f"GPT: {len(text):,} characters, vocabulary {len(vocab)}, "
          f"{run.model.num_parameters():,} parameters, {c.max_iters} steps of "
          f"{tokens_per_step} tokens" + (f", split across {workers} workers" if workers > 1
                                         else ""), flush=True)
    started = time.perf_counter()
    train_seconds, session_steps, window, stopped = 0.0, 0, [], None
    log = resumed_metrics(out / "metrics.jsonl", lambda row: row["step"] <= run.step) \
        if resume else MetricsLog(out / "metrics.jsonl")
    with log, StopOnInterrupt() as stop:
        bar = tqdm(total=c.max_iters, initial=run.step, desc="train", unit="step",
                   mininterval=1.0, file=sys.stderr)
        try:
            while run.step < c.max_iters and not stop.requested:
                tick = time.perf_counter()
                loss, norm = run.train_step()
                seconds = time.perf_counter() - tick
                train_seconds += seconds
                session_steps += 1
                window.append((loss, norm, seconds))
                bar.update(1)
                if run.step % c.log_interval == 0 or run.step == c.max_iters:
                    losses, norms, times = zip(*window, strict=True)
                    tokens_per_s = tokens_per_step * len(times) / sum(times)
                    log.write(step=run.step, loss=float(np.mean(losses)), lr=run.optimizer.lr,
                              grad_norm=float(np.mean(norms)), tokens_per_s=round(tokens_per_s),
                              seconds_per_step=round(sum(times) / len(times), 4))
                    bar.set_postfix(loss=f"{np.mean(losses):.3f}", tok_s=f"{tokens_per_s:,.0f}")
                    window = []
                if run.step % c.eval_interval == 0 or run.step == c.max_iters:
                    losses = {"train": run.estimate_loss(train_ids, 0),
                              "validation": run.estimate_loss(val_ids, 1)}
                    log.write(step=run.step, train_loss=losses["train"],
                              val_loss=losses["validation"],
                              seconds=round(time.perf_counter() - started, 1))
                    refuse_non_finite(checkpoint, [], losses, step=run.step)
                    run.save(checkpoint)
        except FloatingPointError as error:
            stopped = str(error) if isinstance(error, NonFiniteError) else \
                f"{error}; {what_is_kept(checkpoint)}. {LOWER_THE_RATE}"
            print(f"\nstopped: {stopped}", file=sys.stderr)
        finally:
            bar.close()
        if stop.requested:
            stopped = f"interrupted at step {run.step}"
            run.save(checkpoint)
        rows = log.rows
    run.parallel.close()
    seconds = time.perf_counter() - started
    summary = {"val_loss": None, "steps": run.step, "stopped": stopped,
               "seconds": round(seconds, 1), "train_seconds": round(train_seconds, 1),
               "tokens_per_s": round(tokens_per_step * session_steps / max(train_seconds, 1e-9)),
               "parameters": run.model.num_parameters(), "config": asdict(c), "sample": ""}
    marks = []
    if stopped is None or stop.requested:  # a diverged model has nothing to evaluate or say
        summary["val_loss"] = round(evaluate_all(run.model, val_ids), 4)
        marks = [(run.step, summary["val_loss"], f"val, whole split: {summary['val_loss']}")]
        summary["sample"] = sample_text(run.model, vocab, "\n", c.sample_chars,
                                        np.random.default_rng(c.seed), temperature=0.8,
                                        top_k=200)
        (out / "sample.txt").write_text(summary["sample"] + "\n", encoding="utf-8")
    plot_curves(rows, out / "loss.png", ys=["loss", "train_loss", "val_loss"],
                labels={"train_loss": f"train_loss ({c.eval_iters}-batch estimate)",
                        "val_loss": f"val_loss ({c.eval_iters}-batch estimate)"},
                marks=marks, ylabel="nats per character",
                title="GPT on Tiny Shakespeare (NumPy)",
                hline=(TARGET_VAL_LOSS, f"target {TARGET_VAL_LOSS}"))
    write_summary(out, summary)
    return summary

