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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


# ------------------------------------------------- chunks as byte ranges, each distinct one once

def chunk_ends(text: str, pattern: str = GPT2_PATTERN) -> tuple[np.ndarray, np.ndarray]:
    """The chunks of ``text`` without a Python string per chunk: ``data`` (N,) uint8, the UTF-8
    bytes of the chunks end to end, and ``ends`` (n,) int64, where each chunk ends in ``data``.

    For the GPT-2 pattern the chunks cover the text, so ``data`` is the text's UTF-8 and the
    scanner's code-point ends become byte ends by the UTF-8 length of each code point (1 byte
    below U+0080, 2 below U+0800, 3 below U+10000, else 4). Any other pattern goes through
    ``regex.findall``, whose matches need not cover the text, so they are joined."""
    if pattern != GPT2_PATTERN:
        chunks = [chunk.encode("utf-8") for chunk in find_chunks(pattern)(text)]
        return (np.frombuffer(b"".join(chunks), dtype=np.uint8),
                np.cumsum([len(chunk) for chunk in chunks], dtype=np.int64))
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return data, utf8_offsets(cps, gpt2_chunk_ends(cps, character_classes()))


@njit(cache=True, nogil=True)
def utf8_offsets(cps, ends):
    """Code-point offsets ``ends`` (increasing) into ``cps`` -> the same offsets in UTF-8 bytes."""
    out = np.empty(ends.shape[0], dtype=np.int64)
    i = size = 0
    for j in range(ends.shape[0]):
        while i < ends[j]:
            cp = cps[i]
            size += 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
            i += 1
        out[j] = size
    return out


@njit(cache=True, nogil=True)
def _chunk_hash(data, start, end):
    """32-bit FNV-1a over data[start:end]. Kept below 2**32 at every step, so that no product
    overflows int64 (with NUMBA_DISABLE_JIT, NumPy would warn on an overflow)."""
    h = np.int64(2166136261)  # FNV's 32-bit offset basis
    for i in range(start, end):
        h = ((h ^ np.int64(data[i])) * np.int64(16777619)) & np.int64(0xFFFFFFFF)
    return h


@njit(cache=True, nogil=True)
def _same_bytes(data, start_a, end_a, start_b, end_b):
    if end_a - start_a != end_b - start_b:
        return False
    for i in range(end_a - start_a):
        if data[start_a + i] != data[start_b + i]:
            return False
    return True


@njit(cache=True, nogil=True)
def table_slot(key, mask):
    """Where a non-negative int64 key starts its search in a table of mask + 1 (a power of
    two) slots: the key folded to 32 bits and mixed (a multiply-xorshift), so that close keys
    land far apart; the product stays below 2**63."""
    h = ((key ^ (key >> 32)) & np.int64(0xFFFFFFFF)) * np.int64(1540483477)
    return (h ^ (h >> 29)) & mask


@njit(cache=True, nogil=True)
def table_capacity(n):
    """A power of two at least twice ``n``: the table stays at most half full, probes short."""
    capacity = 8
    while capacity < 2 * n:
        capacity *= 2
    return capacity


@njit(cache=True, nogil=True)
def distinct_chunks(data, ends, hash_mask=-1):
    """Which chunks are the same bytes: -> (``chunk_of`` (n,), ``firsts`` (k,)), chunk c being
    distinct chunk ``chunk_of[c]``, whose first occurrence is chunk ``firsts[d]``; distinct
    chunks are numbered in order of first occurrence.

    A hash table (open addressing in one array: slot -> distinct chunk, -1 empty) is probed from
    the chunk's FNV-1a hash; a slot whose chunk has the same hash AND the same bytes is a match,
    anything else moves on to the next slot, so the answer is exact. ``hash_mask`` keeps only
    some bits of the hash: a test sets it small to force collisions. The plain version is a
    Python dict from the chunk's bytes to its number (the tests hold the two equal)."""
    n = ends.shape[0]
    chunk_of = np.empty(n, dtype=np.int64)
    firsts = np.empty(n, dtype=np.int64)
    hashes = np.empty(n, dtype=np.int64)
    mask = table_capacity(n) - 1
    slots = np.full(mask + 1, -1, dtype=np.int64)
    k = 0
    start = 0
    for c in range(n):
        end = ends[c]
        h = _chunk_hash(data, start, end) & hash_mask
        i = table_slot(h, mask)
        while True:
            d = slots[i]
            if d < 0:
                slots[i] = k
                hashes[k] = h
                firsts[k] = c
                chunk_of[c] = k
                k += 1
                break
            f = firsts[d]
            if hashes[d] == h and _same_bytes(data, start, end, ends[f - 1] if f > 0 else 0,
                                              ends[f]):
                chunk_of[c] = d
                break
            i = (i + 1) & mask
        start = end
    return chunk_of, firsts[:k]


@njit(cache=True, nogil=True)
def gather_chunks(data, ends, picks):
    """Chunks ``picks`` laid end to end: -> (bytes (M,) uint8, offsets (len(picks)+1,))."""
    offsets = np.zeros(picks.shape[0] + 1, dtype=np.int64)
    for j in range(picks.shape[0]):
        c = picks[j]
        offsets[j + 1] = offsets[j] + ends[c] - (ends[c - 1] if c > 0 else 0)
    out = np.empty(offsets[-1], dtype=np.uint8)
    for j in range(picks.shape[0]):
        c = picks[j]
        start = ends[c - 1] if c > 0 else 0
        out[offsets[j]:offsets[j + 1]] = data[start:ends[c]]
    return out, offsets


def concatenate_chunks(pieces: list[tuple[np.ndarray, np.ndarray]]):
    """Several (``data``, ``ends``) of ``chunk_ends`` as one: the bytes end to end, the ends
    shifted; no chunk spans two pieces."""
    sizes = np.cumsum([0] + [len(data) for data, _ in pieces], dtype=np.int64)[:-1]
    data = np.concatenate([d for d, _ in pieces] or [np.zeros(0, np.uint8)])
    ends = np.concatenate([e + size for (_, e), size in zip(pieces, sizes, strict=True)]
                          or [np.zeros(0, np.int64)])
    return data, ends


def distinct_chunk_arrays(text: str, pattern: str = GPT2_PATTERN, special_tokens=(), *,
                          min_length: int = 1):
    """``chunk_counts`` as flat arrays, with no Python string per chunk: the distinct chunks
    of at least ``min_length`` bytes laid end to end, ``data`` (N,) uint8 and ``offsets``
    (k+1,), and how often each occurs, ``weights`` (k,), in order of first occurrence."""
    data, ends = concatenate_chunks([chunk_ends(piece, pattern) for piece, is_special
                                     in split_on_special_tokens(text, special_tokens)
                                     if not is_special])
    chunk_of, firsts = distinct_chunks(data, ends)
    weights = np.bincount(chunk_of, minlength=len(firsts))
    lengths = ends[firsts] - np.where(firsts > 0, ends[firsts - 1], 0)
    keep = lengths >= min_length
    chunks, offsets = gather_chunks(data, ends, firsts[keep])
    return chunks, offsets, weights[keep].astype(np.int64)
