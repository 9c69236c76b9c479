"""Pre-tokenization: the regex split that runs before BPE, and the special tokens cut first.

BPE never merges across a chunk boundary, so the split decides what a token can be: with GPT-2's
pattern, letters, digits and punctuation never share a token, and a space stays glued to the
front of the word after it (`" the"`). Special tokens (`<|endoftext|>`) are cut out of the text
before the split, so they are never pieces of a merge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cache
from itertools import pairwise

import numpy as np
import regex
from numba import njit

# GPT-2's split (Radford et al. 2019, the `encoder.py` of openai/gpt-2): a few English
# contractions, then runs of letters, of digits, of other symbols (each with one optional leading
# space), and whitespace, keeping the last space of a run for the word that follows it.
GPT2_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
_APOSTROPHE, _SPACE = ord("'"), ord(" ")


@cache
def character_classes() -> np.ndarray:
    """(0x110000,) uint8: the class of every code point as the ``regex`` module sees it
    (``\\p{L}`` LETTER, ``\\p{N}`` NUMBER, ``\\s`` SPACE, anything else OTHER)."""
    every_code_point = "".join(map(chr, range(0x110000)))
    classes = np.zeros(0x110000, dtype=np.uint8)
    for code, pattern in [(LETTER, r"\p{L}+"), (NUMBER, r"\p{N}+"), (SPACE, r"\s+")]:
        for match in regex.finditer(pattern, every_code_point):
            classes[match.start():match.end()] = code
    return classes


@njit(cache=True)
def _contraction_length(cps, i):
    """2 or 3 if one of 's 't 're 've 'm 'll 'd starts at i, else 0."""
    if cps[i] != 39 or i + 1 >= cps.shape[0]:  # 39 is the apostrophe
        return 0
    c = cps[i + 1]
    if c == 115 or c == 116 or c == 109 or c == 100:  # s t m d
        return 2
    if i + 2 < cps.shape[0]:
        d = cps[i + 2]
        if (c == 114 and d == 101) or (c == 118 and d == 101) or (c == 108 and d == 108):
            return 3  # re ve ll
    return 0


@njit(cache=True)
def gpt2_chunk_ends(cps, classes):
    """Where each chunk of ``GPT2_PATTERN`` ends in the code points ``cps`` (n,): the same
    split as ``regex.findall(GPT2_PATTERN, text)``, its alternatives tried in order."""
    n = cps.shape[0]
    ends = np.empty(n, dtype=np.int64)
    n_chunks = 0
    i = 0
    while i < n:
        j = i + _contraction_length(cps, i)
        if j == i:
            start = i + 1 if cps[i] == 32 and i + 1 < n and classes[cps[i + 1]] != 3 else i
            kind = classes[cps[start]]
            if kind != 3:  # ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`
                j = start + 1
                while j < n and classes[cps[j]] == kind:
                    j += 1
            else:  # `\s+(?!\S)|\s+`: a run of spaces leaves its last one to the next word
                j = i + 1
                while j < n and classes[cps[j]] == 3:
                    j += 1
                if j < n and j - i > 1:
                    j -= 1
        ends[n_chunks] = j
        n_chunks += 1
        i = j
    return ends[:n_chunks]


def split_gpt2(text: str) -> list[str]:
    """``regex.findall(GPT2_PATTERN, text)``, by the numba scanner ``gpt2_chunk_ends``."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ends = gpt2_chunk_ends(cps, character_classes()).tolist()
    return [text[start:end] for start, end in pairwise([0, *ends])]


def find_chunks(pattern: str):
    """The function that splits text into chunks for ``pattern``: the numba scanner for the
    GPT-2 pattern, ``regex``'s ``findall`` for any other. A pattern that is not a valid regular
    expression is a ValueError that quotes it."""
    if pattern == GPT2_PATTERN:
        return split_gpt2
    try:
        return regex.compile(pattern).findall
    except regex.error as error:
        raise ValueError(f"the split pattern {pattern!r} is not a valid regular expression "
                         f"({error})") from None


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
    findall = find_chunks(pattern)
    counts: Counter[str] = Counter()
    for piece, is_special in split_on_special_tokens(text, special_tokens):
        if not is_special:
            counts.update(findall(piece))
    return {chunk.encode("utf-8"): n for chunk, n in counts.items()}
