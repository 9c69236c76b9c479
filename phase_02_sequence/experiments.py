"""The phase's four experiments, behind ``python -m phase_02_sequence``:

- ``vanishing``: how much gradient reaches h_t from h_T, against T - t, for a vanilla RNN and an
  LSTM, at initialisation and after training on the adding problem.
- ``adding``: the adding problem (Hochreiter and Schmidhuber 1997) at T = 50 and T = 100, LSTM
  against vanilla RNN, with the predict-the-mean baseline (MSE 1/6).
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
import matplotlib.pyplot as plt  # noqa: E402
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
from phase_01_nn.linear import Linear  # noqa: E402
from phase_01_nn.losses import (  # noqa: E402
    mse_backward,
    mse_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from phase_01_nn.metrics import (  # noqa: E402
    MetricsLog,
    plot_curves,
    resumed_metrics,
    write_summary,
)
from phase_01_nn.module import Module  # noqa: E402
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
from phase_02_sequence.stacked import recurrent_layer  # noqa: E402

ADDING_BASELINE = 1.0 / 6.0  # Var(u + v) for u, v ~ U(0, 1): the MSE of always predicting 1



# ------------------------------------------------------------------------------- adding

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


# ---------------------------------------------------------------------------- vanishing

def state_gradient_norms(layer, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """norms[k] = mean over the batch of || d(u . h_T) / d s_{T-k} ||, k = 0..T, for a random
    unit vector u per example, where s_t is the layer's whole state after step t ((h_t) for an
    RNN, (h_t, c_t) for an LSTM; s_0 is the zero initial state). norms[0] = ||u|| = 1. Each
    t < T gets its own backward over x[:, t:], starting from s_t."""
    batch, length, _ = x.shape
    u = rng.standard_normal((batch, layer.hidden_size)).astype(x.dtype)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    norms = np.ones(length + 1)
    for t in range(length):
        state = (tuple(np.zeros((batch, layer.hidden_size), x.dtype) for _ in layer.state_names)
                 if t == 0 else layer.forward(x[:, :t])[1])
        tail, final = layer.forward(x[:, t:], state)
        dfinal = (u, *(np.zeros_like(s) for s in final[1:]))
        _, dstate = layer.backward(np.zeros_like(tail), dfinal)
        squared = sum(np.sum(d.astype(np.float64) ** 2, axis=1) for d in dstate)
        norms[length - t] = float(np.mean(np.sqrt(squared)))
    layer.zero_grad()
    return norms


@dataclass
class VanishingConfig:
    length: int = 100
    hidden: int = 64
    batch: int = 64
    train_length: int = 50
    train_steps: int = 1500
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("length", "hidden", "batch", "train_length",
                                     "train_steps"))


def run_vanishing(config: VanishingConfig, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    x, _ = adding_batch(np.random.default_rng(config.seed + 1), config.batch, config.length)
    train = AddingConfig(hidden=config.hidden, steps=config.train_steps,
                         eval_every=max(1, config.train_steps // 10), seed=config.seed)
    curves, summary = {}, {"config": asdict(config)}
    with MetricsLog(out / "metrics.jsonl") as log:
        for cell in ("rnn", "lstm"):
            untrained = SequenceRegressor(cell, 2, config.hidden,
                                          rng=np.random.default_rng(config.seed))
            trained, rows, _ = train_adding(cell, config.train_length, train,
                                            desc=f"vanishing: train {cell}")
            for when, model in (("init", untrained), ("trained", trained)):
                norms = state_gradient_norms(model.core, x, np.random.default_rng(config.seed))
                curves[f"{cell} {when}"] = norms
                for distance, norm in enumerate(norms):
                    log.write(cell=cell, when=when, distance=distance, grad_norm=float(norm))
                summary[f"{cell}_{when}"] = {
                    f"norm_at_{d}": float(norms[d]) for d in (1, 10, 25, 50, config.length)
                    if d <= config.length}
            summary[f"{cell}_trained"]["adding_test_mse"] = rows[-1]["test_mse"] if rows else None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, norms in curves.items():
        ax.semilogy(np.arange(len(norms)), norms, label=label,
                    linestyle="-" if "trained" in label else "--")
    ax.set_xlabel("distance T - t (steps)")
    ax.set_ylabel("mean || d(u . h_T) / d state_t ||")
    ax.set_title(f"gradient reaching step t from step T = {config.length}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "vanishing.png", dpi=120)
    plt.close(fig)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_summary(out, summary)
    return summary


# ------------------------------------------------------------------------------- charlm

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


# ------------------------------------------------------------------------------ seq2seq

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
