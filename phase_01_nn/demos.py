"""The phase's runnable demos, behind ``python -m phase_01_nn``:

- ``spirals``: an MLP classifies 3-class spirals; saves the decision-boundary plot.
- ``names``: Bengio et al.'s character MLP learns names.txt; prints samples, saves the loss curve.
- ``perceptron``: Rosenblatt's rule converges on separable data and cycles forever on XOR.

Each writes ``metrics.jsonl`` (flushed line by line), a PNG and a ``summary.json`` under its
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

from phase_01_nn.activations import ReLU  # noqa: E402
from phase_01_nn.char_mlp import (  # noqa: E402
    CharMLP,
    CharMLPConfig,
    make_examples,
    names_vocabulary,
    sample_names,
    split_words,
)
from phase_01_nn.checkpoint import save_checkpoint  # noqa: E402
from phase_01_nn.config_options import check_config  # noqa: E402
from phase_01_nn.corpus import load_corpus  # noqa: E402
from phase_01_nn.datasets import make_dataset, xor  # noqa: E402
from phase_01_nn.linear import Linear  # noqa: E402
from phase_01_nn.losses import (  # noqa: E402
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from phase_01_nn.metrics import MetricsLog, plot_curves, write_summary  # noqa: E402
from phase_01_nn.module import Module, Sequential  # noqa: E402
from phase_01_nn.optimizers import AdamW  # noqa: E402
from phase_01_nn.perceptron import perceptron_predict, perceptron_train  # noqa: E402
from phase_01_nn.schedule import warmup_cosine_lr  # noqa: E402


def train_step(model: Module, optimizer: AdamW, x: np.ndarray, y: np.ndarray) -> float:
    """One forward, backward and update; returns the loss."""
    logits = model.forward(x)
    loss, cache = softmax_cross_entropy_forward(logits, targets=y)
    if not math.isfinite(float(loss)):
        raise FloatingPointError(f"the loss became {float(loss)}; stopping before the update")
    model.zero_grad()
    model.backward(softmax_cross_entropy_backward(np.ones((), dtype=logits.dtype), cache)[0])
    optimizer.step(model.gradients())
    return float(loss)


def evaluate(model: Module, x: np.ndarray, y: np.ndarray, batch: int = 8192) -> float:
    """Mean cross-entropy over all of (x, y), in evaluation mode."""
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch):
        loss, _ = softmax_cross_entropy_forward(model.forward(x[start:start + batch]),
                                                targets=y[start:start + batch])
        total += float(loss) * len(x[start:start + batch])
    model.train(was_training)
    return total / len(x)



# ----------------------------------------------------------------------------------- spirals

@dataclass
class SpiralsConfig:
    steps: int = 2000
    hidden: int = 100
    lr: float = 1e-2
    weight_decay: float = 1e-4
    noise: float = 0.2
    n_per_class: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("steps", "hidden", "lr", "n_per_class"),
                     non_negative=("weight_decay", "noise"))


def build_classifier(hidden: int, n_classes: int, rng: np.random.Generator) -> Sequential:
    return Sequential(
        Linear(2, hidden, rng=rng, dtype=np.float64), ReLU(),
        Linear(hidden, hidden, rng=rng, dtype=np.float64), ReLU(),
        Linear(hidden, n_classes, rng=rng, nonlinearity="linear", dtype=np.float64),
    )


def plot_decision_boundary(model: Module, x: np.ndarray, y: np.ndarray, path: Path,
                           title: str) -> None:
    pad = 0.2
    lo, hi = x.min(axis=0) - pad, x.max(axis=0) + pad
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
    grid = np.stack([g0.ravel(), g1.ravel()], axis=1)
    predicted = model.forward(grid).argmax(axis=1).reshape(g0.shape)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.contourf(g0, g1, predicted, alpha=0.3, cmap="brg", levels=np.arange(y.max() + 2) - 0.5)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="brg", s=12, edgecolors="k", linewidths=0.3)
    ax.set_title(title)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_spirals(config: SpiralsConfig, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    x, y = make_dataset("spirals", rng, n_per_class=config.n_per_class, noise=config.noise)
    model = build_classifier(config.hidden, int(y.max()) + 1, rng)
    optimizer = AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    started = time.perf_counter()
    accuracy = 0.0
    with MetricsLog(out / "metrics.jsonl") as log:
        bar = tqdm(range(config.steps), desc="spirals", unit="step")
        try:
            for step in bar:
                loss = train_step(model, optimizer, x, y)
                if step % 20 == 0 or step == config.steps - 1:
                    accuracy = float(np.mean(model.forward(x).argmax(axis=1) == y))
                    log.write(step=step, train_loss=loss, train_accuracy=accuracy)
                    bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}")
        except KeyboardInterrupt:
            print("\ninterrupted: saving what the run has so far")
        finally:
            bar.close()
        rows = log.rows
    accuracy = float(np.mean(model.forward(x).argmax(axis=1) == y))
    plot_decision_boundary(model, x, y, out / "decision_boundary.png",
                           f"spirals: training accuracy {accuracy:.1%}")
    plot_curves(rows, out / "loss.png", ys=["train_loss"], title="spirals: training loss")
    summary = {"train_accuracy": accuracy, "steps": rows[-1]["step"] + 1 if rows else 0,
               "seconds": round(time.perf_counter() - started, 2),
               "parameters": model.num_parameters(), "config": asdict(config)}
    write_summary(out, summary)
    return summary


# ------------------------------------------------------------------------------------- names

@dataclass
class NamesConfig:
    steps: int = 30000
    batch_size: int = 64
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 200
    lr: float = 1e-2
    min_lr: float = 1e-3
    warmup_steps: int = 500
    weight_decay: float = 0.01
    eval_every: int = 1000
    seed: int = 42
    samples: int = 20

    def __post_init__(self) -> None:
        check_config(self, positive=("steps", "batch_size", "block_size", "n_embd", "n_hidden",
                                     "lr", "eval_every"),
                     non_negative=("min_lr", "warmup_steps", "weight_decay", "samples"))


def run_names(config: NamesConfig, out: Path, data_path: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    words = load_corpus("names", data_path).split()
    if not words:
        raise ValueError("the names corpus is empty")
    vocab = names_vocabulary(words)
    rng = np.random.default_rng(config.seed)
    train_words, val_words, test_words = split_words(words, rng)
    splits = {name: make_examples(ws, vocab, config.block_size)
              for name, ws in [("train", train_words), ("val", val_words), ("test", test_words)]}
    model_config = CharMLPConfig(vocab_size=len(vocab), block_size=config.block_size,
                                 n_embd=config.n_embd, n_hidden=config.n_hidden)
    model = CharMLP(model_config, rng=rng)
    decay = [name for name in model.parameters() if name.endswith(".w")]
    optimizer = AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                      no_decay=[n for n in model.parameters() if n not in decay])
    x_train, y_train = splits["train"]
    print(f"names: {len(words)} words, vocabulary {len(vocab)}, "
          f"{len(x_train)} training examples, {model.num_parameters()} parameters")

    started = time.perf_counter()
    interrupted = False
    completed = 0  # steps whose update finished; a step cut off by Ctrl-C does not count
    window: list[float] = []
    with MetricsLog(out / "metrics.jsonl") as log:
        bar = tqdm(range(config.steps), desc="names", unit="step", mininterval=0.5)
        try:
            for step in bar:
                optimizer.lr = warmup_cosine_lr(step, max_lr=config.lr, min_lr=config.min_lr,
                                                warmup_steps=config.warmup_steps,
                                                total_steps=config.steps)
                batch = rng.integers(0, len(x_train), size=config.batch_size)
                window.append(train_step(model, optimizer, x_train[batch], y_train[batch]))
                completed = step + 1
                if completed % config.eval_every == 0 or completed == config.steps:
                    val_loss = evaluate(model, *splits["val"])
                    log.write(step=completed, train_loss=float(np.mean(window)),
                              val_loss=val_loss, lr=optimizer.lr,
                              seconds=round(time.perf_counter() - started, 2))
                    bar.set_postfix(train=f"{np.mean(window):.3f}", val=f"{val_loss:.3f}")
                    window = []
        except KeyboardInterrupt:
            interrupted = True
            print(f"\ninterrupted after {completed} steps: saving the model, metrics and plot")
        finally:
            bar.close()
        rows = log.rows
    seconds = time.perf_counter() - started
    results = {split: evaluate(model, *splits[split]) for split in ("train", "val", "test")}
    save_checkpoint(out / "model.npz", model.state_dict(),
                    {"model_config": asdict(model_config), "vocab": vocab.itos,
                     "run_config": asdict(config), "step": completed})
    plot_curves(rows, out / "loss.png", ys=["train_loss", "val_loss"], ylabel="nats per character",
                title="Bengio et al. 2003 char MLP on names.txt", hline=(2.20, "target 2.20"))
    names = sample_names(model, vocab, config.samples, np.random.default_rng(config.seed))
    (out / "samples.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    summary = {**{f"{k}_loss": round(v, 4) for k, v in results.items()},
               "steps": completed, "interrupted": interrupted, "seconds": round(seconds, 1),
               "parameters": model.num_parameters(), "config": asdict(config), "samples": names}
    write_summary(out, summary)
    return summary


# -------------------------------------------------------------------------------- perceptron

def run_perceptron(out: Path, seed: int = 0, epochs: int = 50) -> dict:
    """Train the perceptron on a separable set and on XOR; plot both boundaries."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sep_x = rng.standard_normal((100, 2))
    sep_y = np.where(sep_x @ np.array([1.0, -2.0]) + 0.3 >= 0, 1, -1)
    margin = np.abs(sep_x @ np.array([1.0, -2.0]) + 0.3) > 0.2
    sep_x, sep_y = sep_x[margin], sep_y[margin]
    xor_x, xor_labels = xor(rng, 100, noise=0.15)
    xor_y = np.where(xor_labels == 1, 1, -1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    summary = {}
    with MetricsLog(out / "metrics.jsonl") as log:
        for ax, (name, x, y) in zip(axes, [("separable", sep_x, sep_y), ("xor", xor_x, xor_y)],
                                    strict=True):
            result = perceptron_train(x, y, epochs=epochs)
            for epoch, mistakes in enumerate(result.mistakes_per_epoch):
                log.write(data=name, epoch=epoch + 1, mistakes=mistakes)
            accuracy = float(np.mean(perceptron_predict(x, result.w, result.b) == y))
            summary[name] = {"converged": result.converged,
                             "epochs": len(result.mistakes_per_epoch), "accuracy": accuracy}
            ax.scatter(x[:, 0], x[:, 1], c=y, cmap="bwr", s=14, edgecolors="k", linewidths=0.3)
            xs = np.linspace(x[:, 0].min(), x[:, 0].max(), 2)
            if abs(result.w[1]) > 1e-12:
                ax.plot(xs, -(result.w[0] * xs + result.b) / result.w[1], "k-")
            status = "converged" if result.converged else "did not converge"
            ax.set_title(f"{name}: {status} after {len(result.mistakes_per_epoch)} epochs, "
                         f"accuracy {accuracy:.0%}", fontsize=9)
            ax.set_ylim(x[:, 1].min() - 0.3, x[:, 1].max() + 0.3)
    fig.tight_layout()
    fig.savefig(out / "perceptron.png", dpi=120)
    plt.close(fig)
    write_summary(out, summary)
    return summary
