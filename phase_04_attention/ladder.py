"""The ladder: six character language models on Tiny Shakespeare, each one change away from the
one before, trained with the same split, optimizer, steps, batch and context.

1. ``bigram``: a (V, V) table of next-character logits; no context at all.
2. ``one_head``: token + position embeddings, one causal self-attention head per layer, a head.
3. ``multi_head``: the head split into ``n_head`` heads of C / n_head, with an output projection.
4. ``feed_forward``: + a position-wise MLP (C -> 4C -> C, ReLU) after the attention.
5. ``residual``: each sub-layer adds to its input, x + f(x), instead of replacing it.
6. ``layer_norm``: + layer norm before each sub-layer and before the head (Pre-LN, as in GPT-2).

Rungs 2 to 6 all stack ``n_layer`` blocks, so depth is held fixed and only the inside of a block
changes. Notes: ``phase_04_attention/notes/04_the_ladder.md``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phase_01_nn.checkpoint import load_checkpoint, save_checkpoint
from phase_01_nn.clipping import clip_grad_norm
from phase_01_nn.config_options import check_config
from phase_01_nn.corpus import load_corpus
from phase_01_nn.embedding import Embedding
from phase_01_nn.linear import Linear
from phase_01_nn.losses import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from phase_01_nn.metrics import MetricsLog, plot_curves, write_summary
from phase_01_nn.module import Module
from phase_01_nn.optimizers import AdamW
from phase_01_nn.schedule import warmup_cosine_lr
from phase_01_nn.vocabulary import CharVocabulary, train_val_split
from phase_03_tokenization.char_tokenizer import CharTokenizer
from phase_04_attention.attention import MultiHeadSelfAttention, SelfAttention
from phase_04_attention.feed_forward import FeedForward
from phase_04_attention.layer_norm import LayerNorm

RUNGS = ("bigram", "one_head", "multi_head", "feed_forward", "residual", "layer_norm")


@dataclass
class LadderConfig:
    """One setting for every rung; only ``rung`` changes the model."""

    rungs: str = "1,2,3,4,5,6"
    n_embd: int = 64
    n_head: int = 4
    n_layer: int = 2
    block_size: int = 32
    batch_size: int = 32
    steps: int = 4000
    lr: float = 6e-3
    min_lr: float = 6e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    clip: float = 1.0
    eval_every: int = 200
    eval_windows: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("lr", "clip"), non_negative=("min_lr", "warmup_steps",
                                                                   "weight_decay"))
        for field in ("n_embd", "n_head", "n_layer", "block_size", "batch_size", "steps",
                      "eval_every", "eval_windows"):
            if getattr(self, field) < 1:
                raise ValueError(f"LadderConfig.{field} must be >= 1, got {getattr(self, field)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd = {self.n_embd} is not divisible by n_head = {self.n_head}")
        self.rung_numbers()

    def rung_numbers(self) -> list[int]:
        """The rungs to train, as numbers 1 to 6, from the comma-separated ``rungs``."""
        numbers = [int(item) for item in self.rungs.split(",") if item.strip()]
        bad = [n for n in numbers if not 1 <= n <= len(RUNGS)]
        if not numbers or bad:
            raise ValueError(f"rungs must list numbers from 1 to {len(RUNGS)}, got {self.rungs!r}")
        return numbers


class Block(Module):
    """Attention, then (from rung 4) the feed-forward; from rung 5 each adds to its input, from
    rung 6 each reads a layer-normalised copy of it."""

    def __init__(self, rung: int, config: LadderConfig, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__()
        c = config.n_embd
        self.residual, self.normalised = rung >= 5, rung >= 6
        if rung == 2:
            self.attn = self.add_module("attn", SelfAttention(c, c, rng=rng, causal=True,
                                                              dtype=dtype))
        else:
            self.attn = self.add_module("attn", MultiHeadSelfAttention(
                c, config.n_head, rng=rng, causal=True, dtype=dtype))
        self.ffn = self.add_module("ffn", FeedForward(c, rng=rng, dtype=dtype)) if rung >= 4 \
            else None
        if self.normalised:
            self.ln_1 = self.add_module("ln_1", LayerNorm(c, dtype=dtype))
            self.ln_2 = self.add_module("ln_2", LayerNorm(c, dtype=dtype))

    def _sublayers(self):
        layers = [(self.attn, self.ln_1 if self.normalised else None)]
        if self.ffn is not None:
            layers.append((self.ffn, self.ln_2 if self.normalised else None))
        return layers

    def forward(self, x):
        for layer, norm in self._sublayers():
            y = layer.forward(x if norm is None else norm.forward(x))
            x = x + y if self.residual else y
        return x

    def backward(self, dout):
        for layer, norm in reversed(self._sublayers()):
            dy = layer.backward(dout)
            if norm is not None:
                dy = norm.backward(dy)
            dout = dout + dy if self.residual else dy
        return dout


class LadderModel(Module):
    """ids (B, T) -> logits (B, T, V) for one rung of the ladder."""

    def __init__(self, rung: int, vocab_size: int, config: LadderConfig, *,
                 rng: np.random.Generator, dtype=np.float32) -> None:
        super().__init__()
        if not 1 <= rung <= len(RUNGS):
            raise ValueError(f"rung must be 1 to {len(RUNGS)}, got {rung}")
        self.rung, self.config = rung, config
        c = config.n_embd
        if rung == 1:
            # Each row is the logits of the next character: zeros start at the uniform guess.
            self.table = self.add_module("table", Embedding(vocab_size, vocab_size, rng=rng,
                                                            std=0.0, dtype=dtype))
            return
        self.tokens = self.add_module("tokens", Embedding(vocab_size, c, rng=rng, dtype=dtype))
        self.positions = self.add_module("positions", Embedding(config.block_size, c, rng=rng,
                                                                dtype=dtype))
        self.blocks = [self.add_module(f"block_{i}", Block(rung, config, rng=rng, dtype=dtype))
                       for i in range(config.n_layer)]
        self.ln_f = self.add_module("ln_f", LayerNorm(c, dtype=dtype)) if rung >= 6 else None
        self.head = self.add_module("head", Linear(c, vocab_size, rng=rng, init="xavier",
                                                   dtype=dtype))

    def forward(self, ids):
        ids = np.asarray(ids)
        if ids.ndim != 2 or not 1 <= ids.shape[1] <= self.config.block_size:
            raise ValueError(f"expected ids of shape (B, T) with 1 <= T <= block_size = "
                             f"{self.config.block_size}, got {ids.shape}")
        if self.rung == 1:
            return self.table.forward(ids)
        x = self.tokens.forward(ids) + self.positions.forward(np.arange(ids.shape[1]))
        for block in self.blocks:
            x = block.forward(x)
        if self.ln_f is not None:
            x = self.ln_f.forward(x)
        return self.head.forward(x)

    def backward(self, dlogits):
        if self.rung == 1:
            self.table.backward(dlogits)
            return
        dx = self.head.backward(dlogits)
        if self.ln_f is not None:
            dx = self.ln_f.backward(dx)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        self.tokens.backward(dx)
        self.positions.backward(dx.sum(axis=0))

    def attention_weights(self) -> list[np.ndarray]:
        """After a forward, each block's attention weights (B, H, T, T) (H = 1 on rung 2)."""
        if self.rung == 1:
            raise ValueError("the bigram rung has no attention")
        weights = [block.attn.last_weights for block in self.blocks]
        return [w[:, None] if w.ndim == 3 else w for w in weights]


def random_windows(ids: np.ndarray, rng: np.random.Generator, batch: int, block_size: int):
    """x, y: (batch, block_size) int64 windows starting at random offsets; y is x shifted by one."""
    starts = rng.integers(0, len(ids) - block_size, size=batch)
    offsets = starts[:, None] + np.arange(block_size)
    return ids[offsets], ids[offsets + 1]


def mean_loss(model: LadderModel, x: np.ndarray, y: np.ndarray, *, batch: int = 512) -> float:
    """Mean cross-entropy (nats per character) of the model on windows x, y, in chunks."""
    total = 0.0
    for start in range(0, len(x), batch):
        logits = model.forward(x[start:start + batch])
        loss, _ = softmax_cross_entropy_forward(logits, targets=y[start:start + batch])
        total += float(loss) * len(logits)
    return total / len(x)


def evaluation_windows(ids: np.ndarray, block_size: int, count: int, seed: int):
    """``count`` fixed windows of ``ids``, the same for every rung and every evaluation."""
    if len(ids) <= block_size:
        raise ValueError(f"a split of {len(ids)} tokens is too short for a context of "
                         f"{block_size}")
    return random_windows(ids, np.random.default_rng(seed), count, block_size)


def train_rung(rung: int, config: LadderConfig, train_ids: np.ndarray, val_ids: np.ndarray,
               vocab_size: int, *, log: MetricsLog | None = None) -> tuple[LadderModel, dict]:
    """Train one rung; returns the model and its row of the table. Every rung gets the same
    initial seed, the same batches in the same order and the same evaluation windows."""
    c = config
    model = LadderModel(rung, vocab_size, c, rng=np.random.default_rng(c.seed))
    params = model.parameters()
    optimizer = AdamW(params, lr=c.lr, weight_decay=c.weight_decay,
                      no_decay=[name for name, value in params.items() if value.ndim < 2])
    data_rng = np.random.default_rng(c.seed + 1)
    evals = {split: evaluation_windows(ids, c.block_size, c.eval_windows, c.seed + 2)
             for split, ids in (("train", train_ids), ("val", val_ids))}
    name = RUNGS[rung - 1]
    started = time.perf_counter()
    bar = tqdm(range(c.steps), desc=f"rung {rung} {name}", unit="step", mininterval=1.0)
    for step in bar:
        optimizer.lr = warmup_cosine_lr(step, max_lr=c.lr, min_lr=c.min_lr,
                                        warmup_steps=min(c.warmup_steps, c.steps),
                                        total_steps=c.steps)
        x, y = random_windows(train_ids, data_rng, c.batch_size, c.block_size)
        loss, cache = softmax_cross_entropy_forward(model.forward(x), targets=y)
        if not math.isfinite(float(loss)):
            raise FloatingPointError(f"rung {rung} ({name}), step {step}: the loss became "
                                     f"{float(loss)}")
        model.zero_grad()
        model.backward(softmax_cross_entropy_backward(np.ones((), np.float32), cache)[0])
        clip_grad_norm(model.gradients(), c.clip)
        optimizer.step(model.gradients())
        if (step + 1) % c.eval_every == 0 or step == c.steps - 1:
            losses = {f"{split}_loss": mean_loss(model, *windows)
                      for split, windows in evals.items()}
            if log is not None:
                log.write(rung=rung, name=name, step=step + 1, **losses,
                          seconds=round(time.perf_counter() - started, 2))
            bar.set_postfix(val=f"{losses['val_loss']:.3f}")
    bar.close()
    seconds = time.perf_counter() - started
    val_x, val_y = whole_split_windows(val_ids, c.block_size)
    row = {"rung": rung, "name": name, "parameters": model.num_parameters(),
           "train_loss": round(mean_loss(model, *evals["train"]), 4),
           "val_loss": round(mean_loss(model, val_x, val_y), 4), "seconds": round(seconds, 1)}
    return model, row


def whole_split_windows(ids: np.ndarray, block_size: int):
    """Every non-overlapping window of ``ids``: the final validation loss scores the whole split."""
    count = (len(ids) - 1) // block_size
    x = ids[:count * block_size].reshape(count, block_size)
    y = ids[1:count * block_size + 1].reshape(count, block_size)
    return x, y


def markdown_table(rows: list[dict]) -> str:
    lines = ["| rung | model | parameters | train loss | val loss | seconds |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['rung']} | {r['name']} | {r['parameters']:,} | {r['train_loss']:.4f} | "
              f"{r['val_loss']:.4f} | {r['seconds']} |" for r in rows]
    return "\n".join(lines) + "\n"


def save_model(path: Path, model: LadderModel, config: LadderConfig,
               tokenizer: CharTokenizer) -> Path:
    meta = {"rung": model.rung, "config": asdict(config), "vocab": tokenizer.vocabulary.itos}
    return save_checkpoint(path, model.state_dict(), meta)


def load_model(path: str | Path) -> tuple[LadderModel, CharTokenizer]:
    """A trained rung and its tokenizer from ``save_model``'s checkpoint."""
    arrays, meta = load_checkpoint(path)
    if "rung" not in meta or "vocab" not in meta:
        raise ValueError(f"{path} is not a ladder checkpoint (its metadata has "
                         f"{sorted(meta)})")
    tokenizer = CharTokenizer(CharVocabulary(meta["vocab"]))
    model = LadderModel(meta["rung"], tokenizer.vocab_size, LadderConfig(**meta["config"]),
                        rng=np.random.default_rng(0))
    model.load_state_dict(arrays)
    return model, tokenizer


def run_ladder(config: LadderConfig, out: Path, *, data_path: str | None = None,
               text: str | None = None) -> dict:
    """Train every rung in ``config.rungs``; write metrics.jsonl, ladder.md, summary.json,
    ladder.png and the last rung's checkpoint.npz under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    text = load_corpus("tinyshakespeare", data_path) if text is None else text
    tokenizer = CharTokenizer.train(text)
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    train_ids, val_ids = train_val_split(ids)
    rows, model, interrupted = [], None, False
    with MetricsLog(out / "metrics.jsonl") as log:
        try:
            for rung in config.rung_numbers():
                model, row = train_rung(rung, config, train_ids, val_ids, tokenizer.vocab_size,
                                        log=log)
                rows.append(row)
                print(f"rung {row['rung']} {row['name']}: val {row['val_loss']:.4f} "
                      f"({row['seconds']} s)", flush=True)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: writing the table of the finished rungs")
        curves = log.rows
    merged: dict[int, dict] = {}
    for row in curves:
        merged.setdefault(row["step"], {"step": row["step"]})[row["name"]] = row["val_loss"]
    plot_curves(sorted(merged.values(), key=lambda r: r["step"]), out / "ladder.png",
                ys=[r["name"] for r in rows], ylabel="validation loss (nats per character)",
                title="the ladder on Tiny Shakespeare", hline=(2.5, "2.50"))
    table = markdown_table(rows)
    (out / "ladder.md").write_text(table, encoding="utf-8")
    if model is not None and rows:
        save_model(out / "checkpoint.npz", model, config, tokenizer)
    summary = {"rows": rows, "interrupted": interrupted, "config": asdict(config)}
    write_summary(out, summary)
    (out / "ladder.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    summary["table"] = table
    return summary
