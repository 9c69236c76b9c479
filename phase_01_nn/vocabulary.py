"""Character vocabularies: characters <-> integer ids, with a clear error for unknown characters.

The ids are the positions in a sorted character list, so the same text always gives the same
vocabulary. Phase 3 builds the full tokenizers (char and byte-level BPE) on the same idea.
"""

from __future__ import annotations

import numpy as np


class CharVocabulary:
    """``itos[i]`` is the character with id i; ``stoi`` is the inverse."""

    def __init__(self, chars: list[str]) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError("a vocabulary lists each character once")
        if any(len(ch) != 1 for ch in chars):
            raise ValueError("a character vocabulary holds single characters")
        self.itos = list(chars)
        self.stoi = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        """Every distinct character of ``text``, sorted by code point."""
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> np.ndarray:
        """ids (len(text),) int64; unknown characters are named in the error."""
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(
                f"characters {unknown} of {text[:40]!r}{'...' if len(text) > 40 else ''} "
                f"are not in the vocabulary of {len(self)} characters"
            )
        return np.fromiter((self.stoi[ch] for ch in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        ids = np.asarray(ids)
        bad = (ids < 0) | (ids >= len(self))
        if np.any(bad):
            raise ValueError(f"id {ids[bad].flat[0]} is outside the vocabulary [0, {len(self)})")
        return "".join(self.itos[i] for i in ids.reshape(-1).tolist())


def train_val_split(data, train_fraction: float = 0.9):
    """The first ``train_fraction`` of a sequence for training, the rest for validation (no
    shuffle: a language model is validated on text it has not seen a neighbour of). Every
    phase that trains on Tiny Shakespeare uses this 90/10 split."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n = int(train_fraction * len(data))
    if n == 0 or n == len(data):
        raise ValueError(f"a sequence of length {len(data)} is too short to split")
    return data[:n], data[n:]
