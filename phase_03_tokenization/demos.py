"""The phase's runnable demos, behind ``python -m phase_03_tokenization``:

- ``bpe``: train byte-level BPE on Tiny Shakespeare, save it, report the compression.
- ``word2vec``: skip-gram with negative sampling on Tiny Shakespeare's words; prints the nearest
  neighbours of a few words and saves the loss curve.

Each writes ``metrics.jsonl``, a PNG (word2vec) and a ``summary.json`` under its output
directory; word2vec shows a progress bar and on Ctrl-C stops cleanly, keeping what it has.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phase_01_nn.checkpoint import save_checkpoint
from phase_01_nn.command_line import UserError
from phase_01_nn.config_options import check_config
from phase_01_nn.corpus import load_corpus
from phase_01_nn.metrics import MetricsLog, plot_curves, write_summary
from phase_01_nn.optimizers import SGD
from phase_03_tokenization.bpe import BPETokenizer
from phase_03_tokenization.bpe_training import N_BYTES
from phase_03_tokenization.word2vec import (
    SkipGram,
    nearest_words,
    noise_distribution,
    sample_batch,
    subsample,
    word_corpus,
)

QUERIES = ("king", "love", "romeo", "blood", "thou", "france", "night", "good")



# ---------------------------------------------------------------------------------------- bpe

@dataclass
class BPEConfig:
    vocab_size: int = 4096

    def __post_init__(self) -> None:
        if self.vocab_size < N_BYTES:
            raise UserError(f"--vocab-size must be >= {N_BYTES} (one id per byte comes first), "
                            f"got {self.vocab_size}")


def run_bpe(config: BPEConfig, out: Path, data_path: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    text = load_corpus("tinyshakespeare", data_path)
    started = time.perf_counter()
    tokenizer = BPETokenizer.train(text, config.vocab_size)
    seconds = time.perf_counter() - started
    tokenizer.save(out / "tokenizer.bpe")
    ids = tokenizer.encode(text)
    if tokenizer.decode(ids) != text:
        raise AssertionError("the trained tokenizer does not round-trip its own corpus")
    longest = sorted(tokenizer.vocab[256:], key=len, reverse=True)[:10]
    summary = {"vocab_size": tokenizer.vocab_size, "train_seconds": round(seconds, 3),
               "characters": len(text), "tokens": len(ids),
               "characters_per_token": round(len(text) / len(ids), 3),
               "first_merges": [tokenizer.vocab[256 + i].decode("utf-8", "replace")
                                for i in range(min(10, len(tokenizer.merges)))],
               "longest_tokens": [t.decode("utf-8", "replace") for t in longest],
               "config": asdict(config)}
    with MetricsLog(out / "metrics.jsonl") as log:
        log.write(**{k: v for k, v in summary.items() if isinstance(v, (int, float))})
    write_summary(out, summary)
    return summary


# ----------------------------------------------------------------------------------- word2vec

@dataclass
class Word2VecConfig:
    dim: int = 64
    window: int = 4
    negatives: int = 5
    min_count: int = 5
    subsample: float = 1e-3
    batch_size: int = 256
    steps: int = 20000
    lr: float = 10.0
    log_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("dim", "window", "negatives", "min_count", "batch_size",
                                     "steps", "lr", "log_every"),
                     non_negative=("subsample",))


def run_word2vec(config: Word2VecConfig, out: Path, data_path: str | None = None,
                 queries=QUERIES) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    corpus = word_corpus(load_corpus("tinyshakespeare", data_path), config.min_count)
    ids = subsample(corpus, config.subsample, rng)
    if ids.size <= 2 * config.window:
        raise ValueError(f"{ids.size} words after subsampling: too few for a window of "
                         f"{config.window}")
    noise_cdf = np.cumsum(noise_distribution(corpus.counts))
    model = SkipGram(len(corpus.words), config.dim, rng=rng)
    optimizer = SGD(model.parameters(), lr=config.lr)
    print(f"word2vec: {corpus.ids.size} words, {ids.size} after subsampling, vocabulary "
          f"{len(corpus.words)}, {model.num_parameters()} parameters")

    started = time.perf_counter()
    interrupted = False
    completed = 0
    window: list[float] = []
    with MetricsLog(out / "metrics.jsonl") as log:
        bar = tqdm(range(config.steps), desc="word2vec", unit="step", mininterval=0.5)
        try:
            for step in bar:
                optimizer.lr = config.lr * (1.0 - step / config.steps)  # word2vec's linear decay
                batch = sample_batch(ids, config.batch_size, config.window, noise_cdf,
                                     config.negatives, rng)
                loss = float(model.forward(batch))
                if not math.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at step {step}")
                model.zero_grad()
                model.backward(np.ones((), dtype=np.float32))
                optimizer.step(model.gradients())
                window.append(loss)
                completed = step + 1
                if completed % config.log_every == 0 or completed == config.steps:
                    log.write(step=completed, train_loss=float(np.mean(window)), lr=optimizer.lr)
                    bar.set_postfix(loss=f"{np.mean(window):.3f}")
                    window = []
        except KeyboardInterrupt:
            interrupted = True
            print(f"\ninterrupted after {completed} steps: saving the vectors, metrics and plot")
        finally:
            bar.close()
        rows = log.rows
    seconds = time.perf_counter() - started
    save_checkpoint(out / "vectors.npz", model.state_dict(),
                    {"words": corpus.words, "config": asdict(config), "step": completed})
    plot_curves(rows, out / "loss.png", ys=["train_loss"], ylabel="loss per example (nats)",
                title="word2vec skip-gram, negative sampling, Tiny Shakespeare",
                hline=((config.negatives + 1) * math.log(2), "at initialisation"))
    neighbours = {q: [(w, round(s, 3)) for w, s in nearest_words(model.params["w_in"],
                                                                 corpus.words, q)]
                  for q in queries if q in corpus.words}
    summary = {"final_loss": rows[-1]["train_loss"] if rows else None, "steps": completed,
               "interrupted": interrupted, "seconds": round(seconds, 1),
               "vocabulary": len(corpus.words), "neighbours": neighbours,
               "config": asdict(config)}
    write_summary(out, summary)
    return summary
