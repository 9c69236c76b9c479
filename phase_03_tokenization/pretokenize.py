"""Pre-tokenization: the regex split that runs before BPE, and the special tokens cut first.

BPE never merges across a chunk boundary, so the split decides what a token can be: with GPT-2's
pattern, letters, digits and punctuation never share a token, and a space stays glued to the
front of the word after it (`" the"`). Special tokens (`<|endoftext|>`) are cut out of the text
before the split, so they are never pieces of a merge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import regex

# GPT-2's split (Radford et al. 2019, the `encoder.py` of openai/gpt-2): a few English
# contractions, then runs of letters, of digits, of other symbols (each with one optional leading
# space), and whitespace, keeping the last space of a run for the word that follows it.
GPT2_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def split_on_special_tokens(text: str, special_tokens: Iterable[str]) -> list[tuple[str, bool]]:
    """``text`` as ``(piece, is_special)`` pairs, in order; the longest special token wins."""
    specials = sorted(set(special_tokens), key=len, reverse=True)
    if not specials:
        return [(text, False)] if text else []
    parts = regex.split("(" + "|".join(regex.escape(s) for s in specials) + ")", text)
    # regex.split with one capturing group alternates: text, special, text, special, ..., text.
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]


def chunk_counts(text: str, pattern: str = GPT2_PATTERN,
                 special_tokens: Iterable[str] = ()) -> dict[bytes, int]:
    """How often each chunk (UTF-8 bytes) occurs, after cutting out the special tokens and
    splitting the rest with ``pattern``: the input of every BPE trainer."""
    compiled = regex.compile(pattern)
    counts: Counter[str] = Counter()
    for piece, is_special in split_on_special_tokens(text, special_tokens):
        if not is_special:
            counts.update(compiled.findall(piece))
    return {chunk.encode("utf-8"): n for chunk, n in counts.items()}
