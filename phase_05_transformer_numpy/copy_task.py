"""The copy task: the encoder-decoder's smoke test (as in the Annotated Transformer, after
Vaswani et al. 2017). Symbols 1..10 (0 is the start symbol, so the vocabulary is 11); the model
reads a random sequence of 10 symbols and must write it back. Trained with label smoothing 0.1,
Adam (0.9, 0.98, eps 1e-9) and the inverse-square-root warmup; judged on held-out sequences,
never drawn in training, by greedy decoding (exact copies) and by the plain cross-entropy per
token (the smoothed loss cannot go below the entropy of the smoothed target, 0.51 nats here).
Notes: ``phase_05_transformer_numpy/notes/04_encoder_decoder.md``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from phase_01_nn.losses import softmax_cross_entropy_forward
from phase_01_nn.metrics import MetricsLog, plot_curves, write_summary
from phase_01_nn.optimizers import Adam
from phase_05_transformer_numpy.encoder_decoder import (
    Transformer,
    TransformerConfig,
    greedy_decode,
)
from phase_05_transformer_numpy.inverse_sqrt_schedule import inverse_sqrt_lr

BOS = 0
TARGET_LOSS = 0.3


@dataclass(frozen=True)
class CopyTaskConfig:
    length: int = 10
    n_symbols: int = 10
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    d_ff: int = 256
    pre_ln: bool = False
    smoothing: float = 0.1
    batch_size: int = 64
    steps: int = 1200
    warmup_steps: int = 200
    lr_factor: float = 1.0
    n_test: int = 500
    eval_every: int = 100
    seed: int = 0


class CopyData:
    """Random sequences of symbols 1..n_symbols. The test set is drawn first; training batches
    redraw any row that is in it, so held-out means never seen."""

    def __init__(self, config: CopyTaskConfig) -> None:
        self.config = config
        self.rng = np.random.default_rng((config.seed, 1))
        self.test = self._draw(config.n_test)
        self._test_rows = {row.tobytes() for row in self.test}

    def _draw(self, n: int) -> np.ndarray:
        return self.rng.integers(1, self.config.n_symbols + 1, size=(n, self.config.length))

    def batch(self) -> np.ndarray:
        rows = self._draw(self.config.batch_size)
        for i, row in enumerate(rows):
            while row.tobytes() in self._test_rows:
                row = rows[i] = self._draw(1)[0]
        return rows


def teacher_forcing(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decoder reads [BOS, y_1 .. y_{L-1}] and predicts [y_1 .. y_L]."""
    return np.concatenate([np.full((len(seq), 1), BOS), seq[:, :-1]], axis=1), seq


def evaluate_copy(model: Transformer, seq: np.ndarray) -> dict:
    """Exact-match rate of greedy decoding, and the plain cross-entropy per token (teacher
    forced) on ``seq``."""
    was_training = model.training
    model.eval()
    tgt_in, tgt_out = teacher_forcing(seq)
    logits, _ = model.forward(seq, tgt_in)
    nll, _ = softmax_cross_entropy_forward(logits, targets=tgt_out)
    model.train(was_training)
    decoded = greedy_decode(model, seq, seq.shape[1], bos=BOS)
    return {"exact_match": float(np.mean(np.all(decoded == seq, axis=1))),
            "token_accuracy": float(np.mean(decoded == seq)), "nll": float(nll)}


def make_model(config: CopyTaskConfig, rng: np.random.Generator) -> Transformer:
    c = config
    return Transformer(TransformerConfig(
        vocab_size=c.n_symbols + 1, max_len=c.length + 1, n_layer=c.n_layer, n_head=c.n_head,
        d_model=c.d_model, d_ff=c.d_ff, pre_ln=c.pre_ln, smoothing=c.smoothing), rng=rng)


def run_copy_task(config: CopyTaskConfig, out: Path | None = None) -> dict:
    """Train and evaluate; with ``out``, write metrics.jsonl, loss.png and summary.json."""
    c = config
    model = make_model(c, np.random.default_rng(c.seed))
    optimizer = Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
    data = CopyData(c)
    log = MetricsLog(out / "metrics.jsonl") if out is not None else None
    started = time.perf_counter()
    history, window = [], []
    for step in range(c.steps):
        optimizer.lr = inverse_sqrt_lr(step, d_model=c.d_model, warmup_steps=c.warmup_steps,
                                       factor=c.lr_factor)
        seq = data.batch()
        _, loss = model.forward(seq, *teacher_forcing(seq))
        model.zero_grad()
        model.backward()
        optimizer.step(model.gradients())
        window.append(float(loss))
        if (step + 1) % c.eval_every == 0 or step + 1 == c.steps:
            row = {"step": step + 1, "train_loss": float(np.mean(window)), "lr": optimizer.lr,
                   **{f"test_{k}": v for k, v in evaluate_copy(model, data.test).items()},
                   "seconds": round(time.perf_counter() - started, 2)}
            history.append(row)
            window = []
            if log is not None:
                log.write(**row)
    final = history[-1]
    decoded = greedy_decode(model, data.test[:3], c.length, bos=BOS)
    summary = {**final, "examples": [f"{' '.join(map(str, s))} -> {' '.join(map(str, d))}"
                                     for s, d in zip(data.test[:3], decoded, strict=True)],
               "parameters": model.num_parameters(), "config": asdict(c)}
    if out is not None:
        log.close()
        plot_curves(history, out / "loss.png", ys=["train_loss", "test_nll"],
                    ylabel="nats per token", title="copy task: encoder-decoder Transformer",
                    hline=(TARGET_LOSS, f"target {TARGET_LOSS}"))
        write_summary(out, summary)
    return summary
