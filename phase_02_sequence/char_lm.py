"""A character-level recurrent language model, and its truncated-BPTT training with exact resume.

    logits = head(core(embedding(ids)))        ids: (B, T) -> logits: (B, T, V)

The core is a stack of RNN, LSTM or GRU layers (``phase_02_sequence/stacked.py``). The model
predicts character t + 1 from characters 1..t and the state carried in from earlier windows.
Notes: ``phase_02_sequence/notes/05_char_lm_and_tbptt.md``.
"""

from __future__ import annotations

import math
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from phase_00_math.softmax import softmax
from phase_01_nn.checkpoint import (
    check_same_data,
    data_fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from phase_01_nn.clipping import clip_grad_norm
from phase_01_nn.command_line import UserError
from phase_01_nn.config_options import check_config
from phase_01_nn.embedding import Embedding
from phase_01_nn.linear import Linear
from phase_01_nn.losses import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from phase_01_nn.module import Module
from phase_01_nn.optimizers import AdamW
from phase_01_nn.schedule import warmup_cosine_lr
from phase_01_nn.vocabulary import CharVocabulary
from phase_02_sequence.stacked import CELLS, StackedRecurrent, StreamBatches, reset_streams


@dataclass(frozen=True)
class CharLMConfig:
    vocab_size: int
    cell: str = "lstm"
    n_layer: int = 1
    n_embd: int = 32
    n_hidden: int = 256

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {sorted(CELLS)}")
        for field in ("vocab_size", "n_layer", "n_embd", "n_hidden"):
            if getattr(self, field) < 1:
                raise ValueError(f"CharLMConfig.{field} must be >= 1, got {getattr(self, field)}")


class CharLM(Module):
    """Embedding -> stacked recurrent core -> linear head. ``forward(ids, state)`` returns the
    logits and leaves the final state in ``final_state``; ``backward`` drops the gradient of the
    initial state, which is where truncated BPTT cuts."""

    def __init__(self, config: CharLMConfig, *, rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        c = config
        self.embedding = self.add_module(
            "embedding", Embedding(c.vocab_size, c.n_embd, rng=rng, dtype=dtype))
        self.core = self.add_module(
            "core", StackedRecurrent(c.cell, c.n_embd, c.n_hidden, c.n_layer, rng=rng,
                                     dtype=dtype))
        self.head = self.add_module(
            "head", Linear(c.n_hidden, c.vocab_size, rng=rng, init="xavier", dtype=dtype))
        self.config = config
        self.final_state = None

    def forward(self, ids, state=None):
        """ids: (B, T) ints, state: per-layer state tuples or None -> logits (B, T, V)."""
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"CharLM expects ids of shape (B, T), got {ids.shape}")
        hs, self.final_state = self.core.forward(self.embedding.forward(ids), state)
        return self.head.forward(hs)

    def backward(self, dlogits):
        dx, _ = self.core.backward(self.head.backward(dlogits))
        self.embedding.backward(dx)


def sample(model: CharLM, vocab: CharVocabulary, prompt: str, length: int,
           rng: np.random.Generator, *, temperature: float = 1.0) -> str:
    """The prompt followed by ``length`` characters drawn one at a time from
    softmax(logits / temperature); the state carries the whole prompt and everything drawn."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not prompt:
        raise ValueError("the prompt is empty; give at least one character to start from")
    ids = vocab.encode(prompt)
    was_training = model.training
    model.eval()
    logits = model.forward(ids[None], None)[0, -1]
    drawn = []
    for _ in range(length):
        probabilities = softmax(logits.astype(np.float64) / temperature)
        index = int(rng.choice(len(vocab), p=probabilities))
        drawn.append(index)
        logits = model.forward(np.array([[index]]), model.final_state)[0, -1]
    model.train(was_training)
    return prompt + vocab.decode(drawn)


def evaluate(model: CharLM, ids: np.ndarray, *, batch_size: int = 32, seq_len: int = 256) -> float:
    """Mean cross-entropy (nats per character) over B streams of ``ids``, state carried across
    windows as in training; every full window of every stream is scored."""
    batches = StreamBatches(ids, batch_size, seq_len)
    state, total = None, 0.0
    for _ in range(batches.windows):
        x, y, _ = batches.next_batch()
        loss, _ = softmax_cross_entropy_forward(model.forward(x, state), targets=y)
        state, total = model.final_state, total + float(loss)
    return total / batches.windows


@dataclass
class CharLMTrainConfig:
    cell: str = "lstm"
    n_layer: int = 1
    n_embd: int = 32
    n_hidden: int = 256
    batch_size: int = 32
    seq_len: int = 64
    steps: int = 2000
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.0
    clip: float = 1.0
    reset_every: int = 8
    seed: int = 1337

    def __post_init__(self) -> None:
        CharLMConfig(vocab_size=1, cell=self.cell, n_layer=self.n_layer, n_embd=self.n_embd,
                     n_hidden=self.n_hidden)  # the model's checks, before any data is read
        check_config(self, positive=("batch_size", "seq_len", "steps", "lr", "clip",
                                     "reset_every"),
                     non_negative=("min_lr", "warmup_steps", "weight_decay"))


class CharLMTraining:
    """Everything a run needs, and nothing else: model, optimizer, data streams, the carried
    state, the step, and a generator. ``save``/``load`` make a stopped run continue as if it had
    never stopped: the same losses and parameters, to the bit."""

    def __init__(self, config: CharLMTrainConfig, train_ids: np.ndarray, vocab: CharVocabulary):
        if config.warmup_steps > config.steps:
            raise UserError(f"--warmup-steps {config.warmup_steps} is more than --steps "
                            f"{config.steps}; lower it")
        self.config, self.vocab = config, vocab
        self.rng = np.random.default_rng(config.seed)
        self.model = CharLM(self.model_config, rng=self.rng)
        decay = [name for name in self.model.parameters() if name.endswith((".w", ".w_x", ".w_h"))]
        self.optimizer = AdamW(self.model.parameters(), lr=config.lr,
                               weight_decay=config.weight_decay,
                               no_decay=[n for n in self.model.parameters() if n not in decay])
        self.batches = StreamBatches(train_ids, config.batch_size, config.seq_len,
                                     reset_every=config.reset_every)
        self.data_tokens = len(train_ids)
        self.data_sha256 = data_fingerprint(train_ids)
        self.state = None
        self.step = 0

    @property
    def model_config(self) -> CharLMConfig:
        c = self.config
        return CharLMConfig(vocab_size=len(self.vocab), cell=c.cell, n_layer=c.n_layer,
                            n_embd=c.n_embd, n_hidden=c.n_hidden)

    def train_step(self) -> float:
        """One window: forward from the carried state, backward to the window's start, clip,
        update. Raises FloatingPointError BEFORE the update on a non-finite loss or gradient."""
        c = self.config
        x, y, fresh = self.batches.next_batch()
        self.state = reset_streams(self.state, fresh)
        self.optimizer.lr = warmup_cosine_lr(self.step, max_lr=c.lr, min_lr=c.min_lr,
                                             warmup_steps=c.warmup_steps, total_steps=c.steps)
        logits = self.model.forward(x, self.state)
        loss, cache = softmax_cross_entropy_forward(logits, targets=y)
        if not math.isfinite(float(loss)):
            raise FloatingPointError(f"step {self.step}: the loss became {float(loss)}; stopped "
                                     f"before the update")
        self.model.zero_grad()
        self.model.backward(softmax_cross_entropy_backward(np.ones((), logits.dtype), cache)[0])
        grads = self.model.gradients()
        norm = clip_grad_norm(grads, c.clip)
        if not math.isfinite(norm):
            raise FloatingPointError(f"step {self.step}: the gradient norm became {norm}; "
                                     f"stopped before the update")
        self.optimizer.step(grads)
        self.state = self.model.final_state
        self.step += 1
        return float(loss)

    def save(self, path: str | Path, **extra_meta) -> Path:
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays |= {f"optimizer/{k}": v for k, v in self.optimizer.state_dict().items()}
        if self.state is not None:
            for layer, layer_state in enumerate(self.state):
                arrays |= {f"state/{layer}/{i}": s for i, s in enumerate(layer_state)}
        meta = {"config": asdict(self.config), "vocab": self.vocab.itos, "step": self.step,
                "position": self.batches.position, "rng": self.rng.bit_generator.state,
                "has_state": self.state is not None, "data_tokens": self.data_tokens,
                "data_sha256": self.data_sha256,
                **extra_meta}
        return save_checkpoint(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path, train_ids: np.ndarray, **overrides) -> CharLMTraining:
        """A run restored from ``save``; ``train_ids`` must be the same training data.
        ``overrides`` may change fields that leave the run so far as it was (``steps``)."""
        arrays, meta = load_checkpoint(path)
        check_same_data(path, meta, train_ids)
        config = CharLMTrainConfig(**{**meta["config"], **overrides})
        run = cls(config, train_ids, CharVocabulary(meta["vocab"]))
        run.model.load_state_dict(_under(arrays, "model/"))
        run.optimizer.load_state_dict(_under(arrays, "optimizer/"))
        run.step, run.batches.position = meta["step"], meta["position"]
        run.rng.bit_generator.state = meta["rng"]
        if meta["has_state"]:
            run.state = tuple(
                tuple(arrays[f"state/{layer}/{i}"] for i in range(len(module.state_names)))
                for layer, module in enumerate(run.model.core.modules.values()))
        return run


def _under(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


class StopOnInterrupt:
    """While active, Ctrl-C only sets ``requested``; the training loop stops at the end of the
    current step, so a checkpoint is never taken halfway through an update. A second Ctrl-C
    interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)
