"""Two of the phase's four runs behind ``python -m phase_02_sequence`` (the other two have a
module each: ``vanishing.py`` and ``adding.py``):

- ``charlm``: a char-level LSTM on Tiny Shakespeare, truncated BPTT, checkpoint and resume.
- ``seq2seq``: reverse a digit string; exact match on held-out strings of length 8.

Each writes ``metrics.jsonl`` (flushed line by line), PNG plots and ``summary.json`` under its
output directory, shows a progress bar, and on Ctrl-C stops cleanly, keeping what it has.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from phase_01_nn.checkpoint import (  # noqa: E402
    NonFiniteError,
    refuse_non_finite,
    remove_stale_temporaries,
    what_is_kept,
)
from phase_01_nn.clipping import clip_grad_norm  # noqa: E402
from phase_01_nn.command_line import UserError  # noqa: E402
from phase_01_nn.config_options import check_config, refuse_changes_on_resume  # noqa: E402
from phase_01_nn.corpus import load_corpus  # noqa: E402
from phase_01_nn.losses import (  # noqa: E402
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from phase_01_nn.metrics import (  # noqa: E402
    MetricsLog,
    plot_curves,
    resumed_metrics,
    write_summary,
)
from phase_01_nn.optimizers import Adam  # noqa: E402
from phase_01_nn.schedule import warmup_cosine_lr  # noqa: E402
from phase_01_nn.vocabulary import CharVocabulary, train_val_split  # noqa: E402
from phase_02_sequence.char_lm import (  # noqa: E402
    CharLMTrainConfig,
    CharLMTraining,
    StopOnInterrupt,
    evaluate,
    sample,
)
from phase_02_sequence.seq2seq import (  # noqa: E402
    ReverseTask,
    Seq2Seq,
    Seq2SeqConfig,
    exact_match,
    reverse_examples,
)


@dataclass
class CharLMRunConfig(CharLMTrainConfig):
    eval_every: int = 250
    eval_seq_len: int = 256
    prompt: str = "ROMEO:"
    sample_chars: int = 400
    temperature: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(self, positive=("eval_every", "eval_seq_len", "temperature"),
                     non_negative=("sample_chars",))


# What ``--resume`` may change: what acts only on the steps to come, and what is only measured
# or printed; not the model, the streams' layout (batch, window, resets) or the seed.
RESUMABLE_CHANGES = {"steps", "lr", "min_lr", "warmup_steps", "weight_decay", "clip"} | (
    set(CharLMRunConfig.__dataclass_fields__) - set(CharLMTrainConfig.__dataclass_fields__))


def run_charlm(config: CharLMRunConfig, out: Path, *, data_path: str | None = None,
               resume: bool = False, text: str | None = None,
               given: dict | None = None) -> dict:
    """Train (or, with ``resume``, continue from ``out/checkpoint.npz``) to ``config.steps``.
    ``given``: the options set on the command line, which a resume checks against the saved
    config (only ``RESUMABLE_CHANGES`` may differ)."""
    out.mkdir(parents=True, exist_ok=True)
    text = load_corpus("tinyshakespeare", data_path) if text is None else text
    vocab = CharVocabulary.from_text(text)
    train_ids, val_ids = train_val_split(vocab.encode(text))
    checkpoint = out / "checkpoint.npz"
    remove_stale_temporaries(checkpoint)
    train_fields = set(CharLMTrainConfig.__dataclass_fields__)
    if resume:
        run = CharLMTraining.load(checkpoint, train_ids, **{
            name: getattr(config, name) for name in (given or {})
            if name in RESUMABLE_CHANGES and name in train_fields})
        refuse_changes_on_resume(given or {}, asdict(run.config), allowed=RESUMABLE_CHANGES,
                                 checkpoint=checkpoint)
        print(f"resumed from {checkpoint} at step {run.step}")
    else:
        run = CharLMTraining(CharLMTrainConfig(**{k: v for k, v in asdict(config).items()
                                                  if k in train_fields}), train_ids, vocab)
    steps = run.config.steps
    print(f"charlm: {len(text)} characters, vocabulary {len(vocab)}, "
          f"{run.model.num_parameters()} parameters, {steps} steps")
    val_batch = min(32, (len(val_ids) - 1) // config.eval_seq_len)
    if val_batch < 1:
        raise UserError(f"the validation split has {len(val_ids)} characters, too few for one "
                        f"window of --eval-seq-len {config.eval_seq_len}; use a longer corpus or "
                        f"a smaller --eval-seq-len")
    started = time.perf_counter()
    stopped, window, val_loss, saved_at = None, [], None, None
    log = resumed_metrics(out / "metrics.jsonl", lambda row: row["step"] <= run.step) \
        if resume else MetricsLog(out / "metrics.jsonl")
    with log, StopOnInterrupt() as stop:
        bar = tqdm(total=steps, initial=run.step, desc="charlm", unit="step", mininterval=0.5)
        try:
            while run.step < steps and not stop.requested:
                window.append(run.train_step())
                bar.update(1)
                if run.step % config.eval_every == 0 or run.step == steps:
                    val_loss = evaluate(run.model, val_ids, batch_size=val_batch,
                                        seq_len=config.eval_seq_len)
                    log.write(step=run.step, train_loss=float(np.mean(window)), val_loss=val_loss,
                              lr=run.optimizer.lr,
                              seconds=round(time.perf_counter() - started, 2))
                    bar.set_postfix(train=f"{np.mean(window):.3f}", val=f"{val_loss:.3f}")
                    window = []
                    refuse_non_finite(checkpoint, [], {"validation": val_loss}, step=run.step)
                    run.save(checkpoint)
                    saved_at = run.step
        except FloatingPointError as error:
            stopped = str(error) if isinstance(error, NonFiniteError) else \
                f"{error}; {what_is_kept(checkpoint)}"
            print(f"\nstopped: {stopped}")
        finally:
            bar.close()
        if stop.requested:
            stopped = f"interrupted at step {run.step}"
            print(f"\n{stopped}: saving the checkpoint, metrics and plot so far")
        rows = log.rows
    if (stopped is None or stop.requested) and saved_at != run.step:
        run.save(checkpoint)  # once: a second save would make the previous one this same step
    seconds = time.perf_counter() - started
    plot_curves(rows, out / "loss.png", ys=["train_loss", "val_loss"], ylabel="nats per character",
                title=f"char-level {run.config.cell.upper()} on Tiny Shakespeare",
                hline=(2.0, "target 2.0"))
    text_sample = ""
    if stopped is None or stop.requested:  # a diverged model has nothing to evaluate or say
        if val_loss is None or stopped is None:
            val_loss = evaluate(run.model, val_ids, batch_size=val_batch,
                                seq_len=config.eval_seq_len)
        text_sample = sample(run.model, vocab, config.prompt, config.sample_chars,
                             np.random.default_rng(run.config.seed),
                             temperature=config.temperature)
        (out / "sample.txt").write_text(text_sample + "\n", encoding="utf-8")
    else:
        val_loss = None
    summary = {"val_loss": None if val_loss is None else round(val_loss, 4), "steps": run.step,
               "stopped": stopped,
               "seconds": round(seconds, 1), "parameters": run.model.num_parameters(),
               "config": asdict(run.config), "sample": text_sample}
    write_summary(out, summary)
    return summary


@dataclass
class Seq2SeqRunConfig:
    cell: str = "lstm"
    n_embd: int = 32
    n_hidden: int = 128
    min_length: int = 1
    max_length: int = 8
    test_length: int = 8
    n_test: int = 2000
    batch_size: int = 128
    steps: int = 3000
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    clip: float = 1.0
    eval_every: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("n_embd", "n_hidden", "test_length", "n_test",
                                     "batch_size", "steps", "lr", "clip", "eval_every"),
                     non_negative=("min_lr", "warmup_steps"))
        if not 1 <= self.min_length <= self.max_length:
            raise UserError(f"need 1 <= --min-length <= --max-length, got {self.min_length} "
                            f"and {self.max_length}")


def run_seq2seq(config: Seq2SeqRunConfig, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    task = ReverseTask(np.random.default_rng(config.seed + 1), test_length=config.test_length,
                       n_test=config.n_test)
    model = Seq2Seq(Seq2SeqConfig(cell=config.cell, n_embd=config.n_embd,
                                  n_hidden=config.n_hidden), rng=rng)
    optimizer = Adam(model.parameters(), lr=config.lr)
    started = time.perf_counter()
    accuracy, window, interrupted = 0.0, [], False
    with MetricsLog(out / "metrics.jsonl") as log:
        bar = tqdm(range(config.steps), desc="seq2seq", unit="step", mininterval=0.5)
        try:
            for step in bar:
                optimizer.lr = warmup_cosine_lr(step, max_lr=config.lr, min_lr=config.min_lr,
                                                warmup_steps=min(config.warmup_steps, config.steps),
                                                total_steps=config.steps)
                length = int(rng.integers(config.min_length, config.max_length + 1))
                source = task.train_batch(rng, config.batch_size, length)
                target_in, target_out = reverse_examples(source)
                loss, cache = softmax_cross_entropy_forward(model.forward(source, target_in),
                                                            targets=target_out)
                if not math.isfinite(float(loss)):
                    raise FloatingPointError(f"step {step}: the loss became {float(loss)}")
                model.zero_grad()
                model.backward(softmax_cross_entropy_backward(np.ones((), np.float32), cache)[0])
                clip_grad_norm(model.gradients(), config.clip)
                optimizer.step(model.gradients())
                window.append(float(loss))
                if (step + 1) % config.eval_every == 0 or step == config.steps - 1:
                    accuracy = exact_match(model, task.test_source)
                    log.write(step=step + 1, train_loss=float(np.mean(window)),
                              test_exact_match=accuracy,
                              seconds=round(time.perf_counter() - started, 2))
                    bar.set_postfix(loss=f"{np.mean(window):.4f}", exact=f"{accuracy:.3f}")
                    window = []
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: saving the metrics and plot so far")
        finally:
            bar.close()
        rows = log.rows
    accuracy = exact_match(model, task.test_source)
    plot_curves(rows, out / "exact_match.png", ys=["test_exact_match"], ylabel="exact match",
                title=f"reverse {config.test_length} digits: held-out exact match",
                hline=(0.99, "target 0.99"))
    plot_curves(rows, out / "loss.png", ys=["train_loss"], title="seq2seq training loss")
    examples = [f"{''.join(map(str, s))} -> {''.join(map(str, d[:config.test_length]))}"
                for s, d in zip(task.test_source[:5],
                                model.greedy_decode(task.test_source[:5], config.test_length + 1),
                                strict=True)]
    summary = {"test_exact_match": accuracy, "n_test": config.n_test,
               "steps": rows[-1]["step"] if rows else 0, "interrupted": interrupted,
               "seconds": round(time.perf_counter() - started, 1),
               "parameters": model.num_parameters(), "examples": examples,
               "config": asdict(config)}
    write_summary(out, summary)
    return summary

