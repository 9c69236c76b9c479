"""Sequence to sequence with attention, on phase 2's reverse task.

Phase 2's decoder sees the source only through the encoder's final state, one (B, 2H) array
whatever the source length. Here the decoder also looks back at every encoder state h_1..h_S:

- ``BahdanauSeq2Seq`` (2014): at step t the PREVIOUS decoder state s_{t-1} scores every h_j
  (additive score), the context c_t = sum_j a_tj h_j is fed into the LSTM step with the previous
  token, and the head reads [s_t; c_t]. The context enters the recurrence, so the decoder runs one
  step at a time, in training too.
- ``LuongSeq2Seq`` (2015): the decoder runs as in phase 2; then its CURRENT state h_t scores
  every h_j (dot, general or concat), and the head reads tanh([c_t; h_t] W_c). With teacher
  forcing every step's attention is one batched call (no input feeding).

Both reuse phase 2's embeddings, recurrent layers, task and exact-match metric. A source mask
(B, S), True on real tokens, keeps padding out of the attention.
Notes: ``phase_04_attention/notes/01_attention_for_seq2seq.md``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from phase_01_nn.activations import tanh_backward, tanh_forward  # noqa: E402
from phase_01_nn.clipping import clip_grad_norm  # noqa: E402
from phase_01_nn.config_options import check_config  # noqa: E402
from phase_01_nn.embedding import Embedding  # noqa: E402
from phase_01_nn.initialization import xavier_uniform  # noqa: E402
from phase_01_nn.linear import Linear, linear_backward, linear_forward  # noqa: E402
from phase_01_nn.losses import (  # noqa: E402
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from phase_01_nn.metrics import MetricsLog, write_summary  # noqa: E402
from phase_01_nn.module import Module  # noqa: E402
from phase_01_nn.optimizers import Adam  # noqa: E402
from phase_01_nn.schedule import warmup_cosine_lr  # noqa: E402
from phase_02_sequence.lstm import LSTM, lstm_step_backward, lstm_step_forward  # noqa: E402
from phase_02_sequence.seq2seq import (  # noqa: E402
    DIGITS,
    GO,
    VOCAB_SIZE,
    ReverseTask,
    Seq2Seq,
    Seq2SeqConfig,
    exact_match,
    reverse_examples,
)
from phase_04_attention.alignment import (  # noqa: E402
    additive_score_backward,
    additive_score_forward,
    attend_backward,
    attend_forward,
    attend_weights,
    concat_score_backward,
    concat_score_forward,
    dot_score_backward,
    dot_score_forward,
    general_score_backward,
    general_score_forward,
)

SCORES = ("dot", "general", "concat")


@dataclass(frozen=True)
class AttentionSeq2SeqConfig:
    n_embd: int = 32
    n_hidden: int = 64
    attn_size: int = 64
    score: str = "general"  # Luong only: dot, general or concat

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; choose one of {SCORES}")
        for field in ("n_embd", "n_hidden", "attn_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")


def _source_mask(source_mask, source: np.ndarray):
    """(B, 1, S) bool for ``attend_forward``, or None."""
    if source_mask is None:
        return None
    source_mask = np.asarray(source_mask)
    if source_mask.dtype != bool or source_mask.shape != source.shape:
        raise ValueError(f"source_mask must be a bool array of the source's shape {source.shape}, "
                         f"got {source_mask.dtype} {source_mask.shape}")
    return source_mask[:, None, :]


class EncoderDecoder(Module):
    """What both attention models share: embeddings, an LSTM encoder, and the encoder's states
    kept for the decoder to attend to. ``last_weights`` (B, L, S) after a forward or decode."""

    def __init__(self, config: AttentionSeq2SeqConfig, decoder_input: int, head_input: int, *,
                 rng: np.random.Generator, dtype=np.float32) -> None:
        super().__init__()
        c = config
        self.config = config
        self.source_embedding = self.add_module(
            "source_embedding", Embedding(VOCAB_SIZE, c.n_embd, rng=rng, dtype=dtype))
        self.target_embedding = self.add_module(
            "target_embedding", Embedding(VOCAB_SIZE, c.n_embd, rng=rng, dtype=dtype))
        self.encoder = self.add_module("encoder", LSTM(c.n_embd, c.n_hidden, rng=rng,
                                                       dtype=dtype))
        self.decoder = self.add_module("decoder", LSTM(decoder_input, c.n_hidden, rng=rng,
                                                       dtype=dtype))
        self.head = self.add_module("head", Linear(head_input, VOCAB_SIZE, rng=rng,
                                                   init="xavier", dtype=dtype))
        self.last_weights: np.ndarray | None = None

    def encode(self, source):
        """source: (B, S) ids -> (encoder states (B, S, H), final state (h, c))."""
        source = np.asarray(source)
        if source.ndim != 2:
            raise ValueError(f"expected source ids of shape (B, S), got {source.shape}")
        return self.encoder.forward(self.source_embedding.forward(source))

    def _check_target(self, source, target_in) -> np.ndarray:
        target_in = np.asarray(target_in)
        if target_in.ndim != 2 or target_in.shape[0] != np.shape(source)[0]:
            raise ValueError(f"target_in must be (B, L) with the source's B = "
                             f"{np.shape(source)[0]}, got {target_in.shape}")
        return target_in


class BahdanauSeq2Seq(EncoderDecoder):
    """Additive attention from the previous decoder state; the context is an LSTM input.
    Params beyond phase 2's: ``w_key`` (H, A), ``w_query`` (H, A), ``v`` (A,)."""

    def __init__(self, config: AttentionSeq2SeqConfig, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        c = config
        super().__init__(config, c.n_embd + c.n_hidden, 2 * c.n_hidden, rng=rng, dtype=dtype)
        self.add_param("w_key", xavier_uniform(rng, (c.n_hidden, c.attn_size), dtype=dtype))
        self.add_param("w_query", xavier_uniform(rng, (c.n_hidden, c.attn_size), dtype=dtype))
        self.add_param("v", xavier_uniform(rng, (c.attn_size, 1), dtype=dtype)[:, 0].copy())
        self._cache = None

    def _step(self, embedded, h, c, keys, projected_keys, mask):
        """One decoder step: attend from s_{t-1} = h, then the LSTM step on [y_{t-1}; c_t]."""
        p, d = self.params, self.decoder.params
        scores, score_cache = additive_score_forward(h[:, None], projected_keys, p["w_query"],
                                                     p["v"])
        context, attend_cache = attend_forward(scores, keys, mask=mask)
        x_t = np.concatenate([embedded, context[:, 0]], axis=-1)
        (h, c), step_cache = lstm_step_forward(x_t, h, c, d["w_x"], d["w_h"], d["b"])
        return h, c, context[:, 0], (score_cache, attend_cache, step_cache)

    def _start(self, source, source_mask):
        keys, (h, c) = self.encode(source)
        projected_keys, key_cache = linear_forward(keys, self.params["w_key"])
        return keys, projected_keys, key_cache, h, c, _source_mask(source_mask, np.asarray(source))

    def forward(self, source, target_in, source_mask=None):
        """Teacher forcing: source (B, S), target_in (B, L) ids -> logits (B, L, V)."""
        target_in = self._check_target(source, target_in)
        keys, projected_keys, key_cache, h, c, mask = self._start(source, source_mask)
        embedded = self.target_embedding.forward(target_in)
        outputs, caches = [], []
        for t in range(target_in.shape[1]):
            h, c, context, cache = self._step(embedded[:, t], h, c, keys, projected_keys, mask)
            outputs.append(np.concatenate([h, context], axis=-1))
            caches.append(cache)
        self.last_weights = np.concatenate([attend_weights(cache[1]) for cache in caches], axis=1)
        self._cache = (keys.shape, key_cache, embedded.shape, caches)
        return self.head.forward(np.stack(outputs, axis=1))

    def backward(self, dlogits):
        """Reverse time: each step's LSTM backward hands d[y; c] back, the context's share goes
        through attend and the additive score to s_{t-1} and to the keys."""
        keys_shape, key_cache, embedded_shape, caches = self._cache
        hidden = keys_shape[-1]
        doutputs = self.head.backward(dlogits)
        dembedded = np.empty(embedded_shape, dtype=dlogits.dtype)
        dkeys = np.zeros(keys_shape, dtype=dlogits.dtype)
        dprojected = np.zeros(key_cache[0].shape[:-1] + (self.config.attn_size,),
                              dtype=dlogits.dtype)
        dh = np.zeros((keys_shape[0], hidden), dtype=dlogits.dtype)
        dc = np.zeros_like(dh)
        for t in reversed(range(len(caches))):
            score_cache, attend_cache, step_cache = caches[t]
            dx_t, dh, dc, dw_x, dw_h, db = lstm_step_backward(
                (dh + doutputs[:, t, :hidden], dc), step_cache)
            for name, grad in (("w_x", dw_x), ("w_h", dw_h), ("b", db)):
                self.decoder.grads[name] += grad
            dembedded[:, t] = dx_t[:, :embedded_shape[-1]]
            dcontext = dx_t[:, embedded_shape[-1]:] + doutputs[:, t, hidden:]
            dscores, dvalues = attend_backward(dcontext[:, None], attend_cache)
            dkeys += dvalues
            dquery, dprojected_t, dw_query, dv = additive_score_backward(dscores, score_cache)
            dprojected += dprojected_t
            self.grads["w_query"] += dw_query
            self.grads["v"] += dv
            dh = dh + dquery[:, 0]
        dkeys_projection, dw_key, _ = linear_backward(dprojected, key_cache)
        self.grads["w_key"] += dw_key
        self.target_embedding.backward(dembedded)
        dx, _ = self.encoder.backward(dkeys + dkeys_projection, (dh, dc))
        self.source_embedding.backward(dx)

    def greedy_decode(self, source, max_length: int, source_mask=None) -> np.ndarray:
        """(B, max_length) ids, feeding back each step's argmax; ``last_weights`` (B, L, S)."""
        keys, projected_keys, _, h, c, mask = self._start(source, source_mask)
        token = np.full(len(keys), GO)
        out = np.empty((len(keys), max_length), dtype=np.int64)
        weights = []
        for t in range(max_length):
            h, c, context, cache = self._step(self.target_embedding.forward(token), h, c, keys,
                                              projected_keys, mask)
            weights.append(attend_weights(cache[1]))
            token = self.head.forward(np.concatenate([h, context], axis=-1)).argmax(axis=-1)
            out[:, t] = token
        self.last_weights = np.concatenate(weights, axis=1)
        return out


class LuongSeq2Seq(EncoderDecoder):
    """Global attention from the current decoder state, after the decoder has run.
    Params beyond phase 2's: ``w_c`` (2H, H), and for the score ``w`` ((H, H) for general,
    (2H, A) for concat) and ``v`` (A,) for concat."""

    def __init__(self, config: AttentionSeq2SeqConfig, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        c = config
        super().__init__(config, c.n_embd, c.n_hidden, rng=rng, dtype=dtype)
        self.add_param("w_c", xavier_uniform(rng, (2 * c.n_hidden, c.n_hidden), dtype=dtype))
        if c.score == "general":
            self.add_param("w", xavier_uniform(rng, (c.n_hidden, c.n_hidden), dtype=dtype))
        elif c.score == "concat":
            self.add_param("w", xavier_uniform(rng, (2 * c.n_hidden, c.attn_size), dtype=dtype))
            self.add_param("v", xavier_uniform(rng, (c.attn_size, 1), dtype=dtype)[:, 0].copy())
        self._cache = None

    def _score_forward(self, query, keys):
        score, p = self.config.score, self.params
        if score == "dot":
            return dot_score_forward(query, keys)
        if score == "general":
            return general_score_forward(query, keys, p["w"])
        return concat_score_forward(query, keys, p["w"], p["v"])

    def _score_backward(self, dscores, cache):
        """-> (dquery, dkeys), adding the score's parameter gradients."""
        score = self.config.score
        if score == "dot":
            return dot_score_backward(dscores, cache)
        if score == "general":
            dquery, dkeys, dw = general_score_backward(dscores, cache)
        else:
            dquery, dkeys, dw, dv = concat_score_backward(dscores, cache)
            self.grads["v"] += dv
        self.grads["w"] += dw
        return dquery, dkeys

    def _attend(self, states, keys, mask):
        """Decoder states (B, L, H) -> head input tanh([c; h] W_c) (B, L, H), and the caches."""
        scores, score_cache = self._score_forward(states, keys)
        context, attend_cache = attend_forward(scores, keys, mask=mask)
        combined, combine_cache = linear_forward(np.concatenate([context, states], axis=-1),
                                                 self.params["w_c"])
        attentional, tanh_cache = tanh_forward(combined)
        return attentional, (score_cache, attend_cache, combine_cache, tanh_cache)

    def forward(self, source, target_in, source_mask=None):
        """Teacher forcing: source (B, S), target_in (B, L) ids -> logits (B, L, V)."""
        target_in = self._check_target(source, target_in)
        keys, state = self.encode(source)
        states, _ = self.decoder.forward(self.target_embedding.forward(target_in), state)
        attentional, caches = self._attend(states, keys,
                                           _source_mask(source_mask, np.asarray(source)))
        self.last_weights = attend_weights(caches[1])
        self._cache = caches
        return self.head.forward(attentional)

    def backward(self, dlogits):
        score_cache, attend_cache, combine_cache, tanh_cache = self._cache
        (dcombined,) = tanh_backward(self.head.backward(dlogits), tanh_cache)
        dconcat, dw_c, _ = linear_backward(dcombined, combine_cache)
        self.grads["w_c"] += dw_c
        hidden = self.config.n_hidden
        dscores, dkeys = attend_backward(dconcat[..., :hidden], attend_cache)
        dquery, dkeys_score = self._score_backward(dscores, score_cache)
        dx, dstate = self.decoder.backward(dconcat[..., hidden:] + dquery)
        self.target_embedding.backward(dx)
        dx, _ = self.encoder.backward(dkeys + dkeys_score, dstate)
        self.source_embedding.backward(dx)

    def greedy_decode(self, source, max_length: int, source_mask=None) -> np.ndarray:
        """(B, max_length) ids, one decoder step at a time; ``last_weights`` (B, L, S)."""
        keys, state = self.encode(source)
        mask = _source_mask(source_mask, np.asarray(source))
        token = np.full((len(keys), 1), GO)
        out = np.empty((len(keys), max_length), dtype=np.int64)
        weights = []
        for t in range(max_length):
            states, state = self.decoder.forward(self.target_embedding.forward(token), state)
            attentional, caches = self._attend(states, keys, mask)
            weights.append(attend_weights(caches[1]))
            token = self.head.forward(attentional).argmax(axis=-1)
            out[:, t] = token[:, 0]
        self.last_weights = np.concatenate(weights, axis=1)
        return out


MODELS = ("none", "bahdanau", "luong")


def build_model(kind: str, config: AttentionSeq2SeqConfig, *, rng: np.random.Generator,
                dtype=np.float32) -> Module:
    """``none`` is phase 2's Seq2Seq with the same sizes; the others attend."""
    if kind == "none":
        return Seq2Seq(Seq2SeqConfig(cell="lstm", n_embd=config.n_embd,
                                     n_hidden=config.n_hidden), rng=rng, dtype=dtype)
    if kind == "bahdanau":
        return BahdanauSeq2Seq(config, rng=rng, dtype=dtype)
    if kind == "luong":
        return LuongSeq2Seq(config, rng=rng, dtype=dtype)
    raise ValueError(f"unknown model {kind!r}; choose one of {MODELS}")


def token_accuracy(model: Module, source: np.ndarray) -> float:
    """The fraction of the L reversed digits (EOS not counted) that greedy decoding gets right."""
    _, target_out = reverse_examples(source)
    decoded = model.greedy_decode(source, source.shape[1] + 1)
    return float(np.mean(decoded[:, :-1] == target_out[:, :-1]))


@dataclass
class Seq2SeqAttentionConfig:
    lengths: str = "8,16,24,32"
    models: str = "none,bahdanau,luong"
    score: str = "general"
    n_embd: int = 32
    n_hidden: int = 64
    attn_size: int = 64
    batch_size: int = 64
    steps: int = 1500
    lr: float = 5e-3
    min_lr: float = 1e-4
    warmup_steps: int = 50
    clip: float = 1.0
    n_test: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, positive=("n_embd", "n_hidden", "attn_size", "batch_size", "steps",
                                     "lr", "clip", "n_test"),
                     non_negative=("min_lr", "warmup_steps"))


class LongReverseTask:
    """Phase 2's ``ReverseTask`` for strings too long to number in int64 (10**L > 2**63 from
    L = 19 on). The test strings are drawn at random and training batches are not filtered: the
    chance that a batch of 64 draws one of 500 test strings of 19 digits is 64 * 500 / 10**19,
    so the test set is held out in practice."""

    def __init__(self, rng: np.random.Generator, *, test_length: int, n_test: int) -> None:
        self.test_length = test_length
        self.test_source = rng.integers(0, DIGITS, size=(n_test, test_length))

    @staticmethod
    def train_batch(rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        return rng.integers(0, DIGITS, size=(batch, length))


def reverse_task(rng: np.random.Generator, length: int, n_test: int):
    """Phase 2's task with its exact held-out set where the strings fit in int64."""
    if DIGITS**length < 2**62:
        return ReverseTask(rng, test_length=length, n_test=n_test)
    return LongReverseTask(rng, test_length=length, n_test=n_test)


def train_reverse(kind: str, length: int, config: Seq2SeqAttentionConfig) -> tuple[Module, dict]:
    """Train on lengths drawn from 1 to ``length``; score on held-out strings of ``length``."""
    c = config
    rng = np.random.default_rng(c.seed)
    task = reverse_task(np.random.default_rng(c.seed + 1), length, c.n_test)
    model = build_model(kind, AttentionSeq2SeqConfig(n_embd=c.n_embd, n_hidden=c.n_hidden,
                                                     attn_size=c.attn_size, score=c.score),
                        rng=rng)
    optimizer = Adam(model.parameters(), lr=c.lr)
    started = time.perf_counter()
    bar = tqdm(range(c.steps), desc=f"reverse L={length} {kind}", unit="step", mininterval=1.0)
    for step in bar:
        optimizer.lr = warmup_cosine_lr(step, max_lr=c.lr, min_lr=c.min_lr,
                                        warmup_steps=min(c.warmup_steps, c.steps),
                                        total_steps=c.steps)
        source = task.train_batch(rng, c.batch_size, int(rng.integers(1, length + 1)))
        target_in, target_out = reverse_examples(source)
        loss, cache = softmax_cross_entropy_forward(model.forward(source, target_in),
                                                    targets=target_out)
        if not np.isfinite(float(loss)):
            raise FloatingPointError(f"{kind}, L = {length}, step {step}: the loss became "
                                     f"{float(loss)}")
        model.zero_grad()
        model.backward(softmax_cross_entropy_backward(np.ones((), np.float32), cache)[0])
        clip_grad_norm(model.gradients(), c.clip)
        optimizer.step(model.gradients())
    bar.close()
    row = {"model": kind, "length": length, "parameters": model.num_parameters(),
           "exact_match": exact_match(model, task.test_source),
           "token_accuracy": round(token_accuracy(model, task.test_source), 4),
           "seconds": round(time.perf_counter() - started, 1)}
    return model, row


def plot_alignment(weights: np.ndarray, source: np.ndarray, path: Path, title: str) -> Path:
    """One (L, S) attention matrix: decoder steps down, source digits across."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source)), [str(d) for d in source], fontsize=7)
    ax.set_xlabel("source digit")
    ax.set_ylabel("decoder step (output)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_seq2seq_attention(config: Seq2SeqAttentionConfig, out: Path) -> dict:
    """Every model at every length: seq2seq.md / summary.json table, exact_match.png, and one
    alignment plot per attention model at the longest length."""
    out.mkdir(parents=True, exist_ok=True)
    lengths = [int(x) for x in config.lengths.split(",") if x.strip()]
    kinds = [x.strip() for x in config.models.split(",") if x.strip()]
    for kind in kinds:
        if kind not in MODELS:
            raise ValueError(f"unknown model {kind!r}; choose from {MODELS}")
    rows = []
    with MetricsLog(out / "metrics.jsonl") as log:
        for length in lengths:
            for kind in kinds:
                model, row = train_reverse(kind, length, config)
                rows.append(row)
                log.write(**row)
                print(f"L = {length:2d} {kind:8s}: exact match {row['exact_match']:.1%}, "
                      f"digits {row['token_accuracy']:.1%} ({row['seconds']} s)", flush=True)
                if kind != "none" and length == max(lengths):
                    source = np.random.default_rng(config.seed + 7).integers(0, 10, (1, length))
                    model.greedy_decode(source, length + 1)
                    plot_alignment(model.last_weights[0], source[0],
                                   out / f"alignment_{kind}_L{length}.png",
                                   f"{kind} attention, reversing {length} digits")
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in kinds:
        points = [(r["length"], r["exact_match"]) for r in rows if r["model"] == kind]
        ax.plot(*zip(*points, strict=True), marker="o", label=kind)
    ax.set_xlabel("source length")
    ax.set_ylabel("held-out exact match")
    ax.set_title(f"reversing digits, {config.steps} steps each")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "exact_match.png", dpi=110)
    plt.close(fig)
    table = ["| length | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for length in lengths:
        cells = [next(f"{r['exact_match']:.1%} ({r['token_accuracy']:.1%})" for r in rows
                      if r["model"] == kind and r["length"] == length) for kind in kinds]
        table.append(f"| {length} | " + " | ".join(cells) + " |")
    text = "\n".join(table) + "\n"
    (out / "seq2seq.md").write_text(text, encoding="utf-8")
    summary = {"rows": rows, "config": asdict(config), "table": text}
    write_summary(out, summary)
    return summary
