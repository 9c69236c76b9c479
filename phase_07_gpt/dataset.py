"""A corpus as token ids, split 90/10, and random (B, T) windows of it for training.

Batches are drawn as nanoGPT draws them: B random start positions, each window of T + 1 tokens
giving the inputs and the next-token targets. The draws come from one ``torch.Generator``, whose
state is the data position a checkpoint saves, so a resumed run sees the same batches as one
that was never stopped.
Notes: ``phase_07_gpt/notes/03_the_trainer.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from phase_01_nn.corpus import CORPORA, corpus_path, load_corpus
from phase_01_nn.vocabulary import train_val_split
from phase_03_tokenization.bpe import BPETokenizer
from phase_03_tokenization.char_tokenizer import CharTokenizer

CHAR_TOKENIZER_FILE = "tokenizer.txt"


def gpt2_tokenizer() -> BPETokenizer:
    """GPT-2's tokenizer from ``vocab.bpe`` and ``encoder.json``, found by phase 1's loader."""
    return BPETokenizer.from_gpt2(corpus_path("gpt2-vocab"), corpus_path("gpt2-encoder"))


def read_text(data: str) -> str:
    """A known corpus by name, or a text file by path."""
    if data in CORPORA:
        return load_corpus(data)
    return load_corpus(data, data)


def build_tokenizer(kind: str, text: str):
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "gpt2":
        return gpt2_tokenizer()
    raise ValueError(f"unknown tokenizer {kind!r}; expected 'char' or 'gpt2'")


def save_tokenizer(tokenizer, kind: str, run_dir: str | os.PathLike) -> None:
    """The char tokenizer's file beside the checkpoint; GPT-2's is rebuilt from its files."""
    if kind == "char":
        tokenizer.save(Path(run_dir) / CHAR_TOKENIZER_FILE)


def load_tokenizer(kind: str, run_dir: str | os.PathLike):
    if kind == "gpt2":
        return gpt2_tokenizer()
    path = Path(run_dir) / CHAR_TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no character tokenizer at {path}; it is written by training")
    return CharTokenizer.load(path)


@dataclass
class TokenData:
    tokenizer: object
    train: torch.Tensor  # (N_train,) int64
    val: torch.Tensor  # (N_val,) int64

    @classmethod
    def from_text(cls, text: str, tokenizer, block_size: int) -> TokenData:
        ids = torch.tensor(tokenizer.encode(text), dtype=torch.int64)
        train, val = train_val_split(ids)
        for split, part in (("training", train), ("validation", val)):
            if len(part) <= block_size:
                raise ValueError(f"the {split} split has {len(part)} tokens, too few for a "
                                 f"context of block_size = {block_size} (it needs more than "
                                 f"block_size tokens); use a longer corpus or a shorter context")
        return cls(tokenizer, train, val)


def get_batch(data: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator, device: torch.device):
    """x, y: (B, T) int64 on ``device``; y is x shifted one token left."""
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    windows = data[starts[:, None] + torch.arange(block_size + 1)]
    x, y = windows[:, :-1], windows[:, 1:]
    if device.type == "cuda":
        return (x.pin_memory().to(device, non_blocking=True),
                y.pin_memory().to(device, non_blocking=True))
    return x.to(device), y.to(device)
