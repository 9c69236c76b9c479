"""Batches from token shards: one continuous stream, each DDP rank its own slice, resumable.

The shards of a split, in name order, are read as one stream of tokens (each memory-mapped).
A micro-step of the whole job reads ``world_size * B * T`` consecutive tokens (plus one for the
last target); rank r takes the r-th block of B*T of them:

    stream:  ... | rank 0: B*T (+1) | rank 1: B*T (+1) | ... | next micro-step ...
                 ^ position                                   ^ position + world * B * T

So one process with twice the micro-steps reads exactly the sequences that two ranks read
together, in the order rank 0, rank 1, rank 0, rank 1: the proof that DDP trains on the same
data. A window that starts near the end of a shard continues into the next one: the stream has
no seams. When fewer tokens are left than a micro-step needs, the stream starts again from the
beginning (``epoch`` counts the passes). ``position`` and ``epoch`` are the whole state: the same
on every rank, saved with a checkpoint, with the shard names and sizes to check on restore.
Notes: ``phase_08_train_124m/notes/01_data_shards.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from phase_08_train_124m.shard_file import read_shard


def split_paths(data_dir: str | os.PathLike, split: str) -> list[Path]:
    """The shards of ``split`` ("train" or "val") in ``data_dir``: ``<split>_*.bin`` in name
    order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no data directory {data_dir}; write shards into it with "
                                f"python -m phase_08_train_124m.prepare INPUT --out {data_dir}")
    paths = sorted(data_dir.glob(f"{split}_*.bin"))
    if not paths:
        raise FileNotFoundError(f"{data_dir} holds no {split}_*.bin shards; write them with "
                                f"python -m phase_08_train_124m.prepare INPUT --out {data_dir}")
    return paths


class ShardLoader:
    """``next_batch()`` -> (x, y), int64 tensors of shape (B, T) on the CPU, y = x shifted by
    one token. ``vocab_size``, when given, is checked against every batch (an id outside the
    model's vocabulary fails here, naming the shard position, not inside an embedding)."""

    def __init__(self, paths, batch_size: int, block_size: int, *, rank: int = 0,
                 world_size: int = 1, vocab_size: int | None = None) -> None:
        if batch_size < 1 or block_size < 1:
            raise ValueError(f"batch_size and block_size must be >= 1, got {batch_size} and "
                             f"{block_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size = {world_size}), got {rank}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ShardLoader needs at least one shard")
        self.shards = [read_shard(p) for p in self.paths]
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])
        self.total = int(self.starts[-1])
        self.batch_size, self.block_size = batch_size, block_size
        self.rank, self.world_size = rank, world_size
        self.vocab_size = vocab_size
        self.step_tokens = world_size * batch_size * block_size
        if self.total < self.step_tokens + 1:
            raise ValueError(
                f"the shards {[p.name for p in self.paths]} hold {self.total} tokens, fewer "
                f"than one micro-step needs: world_size {world_size} x batch {batch_size} x "
                f"context {block_size} + 1 = {self.step_tokens + 1}; prepare more data or use "
                f"a smaller batch or context")
        self.position, self.epoch = 0, 0

    @classmethod
    def from_dir(cls, data_dir: str | os.PathLike, split: str, batch_size: int,
                 block_size: int, **kwargs) -> ShardLoader:
        return cls(split_paths(data_dir, split), batch_size, block_size, **kwargs)

    def read(self, start: int, count: int) -> np.ndarray:
        """``count`` tokens of the stream from ``start``, across shard ends, as int64."""
        out = np.empty(count, dtype=np.int64)
        shard = int(np.searchsorted(self.starts, start, side="right")) - 1
        filled = 0
        while filled < count:
            offset = start + filled - int(self.starts[shard])
            piece = self.shards[shard][offset:offset + count - filled]
            out[filled:filled + len(piece)] = piece
            filled += len(piece)
            shard += 1
        return out

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position + self.step_tokens + 1 > self.total:
            self.position, self.epoch = 0, self.epoch + 1
        b, t = self.batch_size, self.block_size
        start = self.position + self.rank * b * t
        window = self.read(start, b * t + 1)
        if self.vocab_size is not None and window.max() >= self.vocab_size:
            raise ValueError(f"token id {int(window.max())} in the stream at [{start}, "
                             f"{start + b * t + 1}) is outside the model's vocabulary of "
                             f"{self.vocab_size}: these shards were made for another tokenizer")
        self.position += self.step_tokens
        x = torch.from_numpy(window[:-1].reshape(b, t))
        y = torch.from_numpy(window[1:].reshape(b, t))
        return x, y

    def reset(self) -> None:
        self.position, self.epoch = 0, 0

    def shard_list(self) -> list[list]:
        return [[p.name, len(s)] for p, s in zip(self.paths, self.shards, strict=True)]

    def state_dict(self) -> dict:
        return {"position": self.position, "epoch": self.epoch, "shards": self.shard_list()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; the shards must be the ones it was saved with."""
        saved = [list(item) for item in state["shards"]]
        if saved != self.shard_list():
            raise ValueError(f"the saved loader position is for the shards {saved}, but this "
                             f"loader reads {self.shard_list()}; resume with the same data "
                             f"directory")
        position = int(state["position"])
        if not 0 <= position <= self.total:
            raise ValueError(f"saved position {position} is outside the stream of "
                             f"{self.total} tokens")
        self.position, self.epoch = position, int(state["epoch"])
