"""The character tokenizer: one id per distinct character of a corpus.

It wraps phase 1's ``CharVocabulary`` (sorted characters, a clear error for an unknown one) in
the interface every tokenizer of this phase shares: ``encode`` to a list of ids, ``decode``,
``vocab_size``, ``save`` / ``load``. Tiny Shakespeare needs 65 ids; in exchange a sequence is as
long as the text, and a character never seen in training cannot be encoded at all.
"""

from __future__ import annotations

import json
import os

from phase_01_nn.vocabulary import CharVocabulary

FORMAT_HEADER = "tfs-char 1"


class CharTokenizer:
    def __init__(self, vocabulary: CharVocabulary) -> None:
        self.vocabulary = vocabulary

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """Every distinct character of ``text``, ids in code-point order."""
        return cls(CharVocabulary.from_text(text))

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        return self.vocabulary.encode(text).tolist()

    def decode(self, ids) -> str:
        return self.vocabulary.decode(ids)

    def save(self, path: str | os.PathLike) -> None:
        """A header line, then the characters as one JSON list (newlines and NUL included)."""
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(f"{FORMAT_HEADER}\n{json.dumps(self.vocabulary.itos)}\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        with open(path, encoding="utf-8") as handle:
            header, _, body = handle.read().partition("\n")
        if header != FORMAT_HEADER:
            raise ValueError(f"{path} is not a character tokenizer in the format "
                             f"{FORMAT_HEADER!r} (its first line is {header[:60]!r})")
        try:
            return cls(CharVocabulary(json.loads(body)))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a valid character tokenizer file: {error}") from None
