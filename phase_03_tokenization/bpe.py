"""Byte-level BPE (Sennrich et al. 2016 on bytes, as in Radford et al. 2019): the tokenizer.

Ids 0-255 are the raw bytes (in GPT-2's files, a permutation of them, ``byte_ids``); the i-th
merge ``(left_id, right_id)`` makes id 256 + i; the special tokens come after the last merge.
Encoding splits the text with the regex pattern into byte ranges and encodes each distinct chunk
once: a numba kernel repeatedly merges the adjacent pair with the lowest id (the earliest
merge), and the chunks that repeat copy the ids of their first occurrence (no string per chunk,
no cache kept between calls). Notes: ``phase_03_tokenization/notes/02_bpe.md``.
"""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
from numba import njit

from phase_03_tokenization.bpe_training import N_BYTES, merge_pair, train_incremental
from phase_03_tokenization.gpt2_encoding import read_gpt2_files
from phase_03_tokenization.pretokenize import (
    GPT2_PATTERN,
    chunk_ends,
    concatenate_chunks,
    distinct_chunks,
    find_chunks,
    gather_chunks,
    split_on_special_tokens,
    table_capacity,
    table_slot,
)

FORMAT_HEADER = "tfs-bpe 1"


# ------------------------------------------------------------------- encoding one chunk

def encode_chunk_reference(data: bytes, byte_ids, merge_ids: dict[tuple[int, int], int]):
    """The ids of one chunk: start from its bytes, merge the pair with the lowest new id
    (the earliest merge learned) everywhere, left to right, until no pair can merge."""
    ids = [int(byte_ids[b]) for b in data]
    while len(ids) > 1:
        pair = min(pairwise(ids), key=lambda p: merge_ids.get(p, np.inf))
        if pair not in merge_ids:
            break
        ids = merge_pair(ids, pair, merge_ids[pair])
    return ids


@njit(cache=True)
def merge_table(merges):
    """(k, 2) merges -> a hash table (``keys``, ``values``) from the pair key
    ``left << 32 | right`` to the id it makes, by open addressing (-1 marks an empty slot);
    ``merge_lookup`` reads it. The plain version is the dict ``{pair: id}`` of
    ``encode_chunk_reference``."""
    mask = table_capacity(merges.shape[0]) - 1
    keys = np.full(mask + 1, -1, dtype=np.int64)
    values = np.empty(mask + 1, dtype=np.int64)
    for m in range(merges.shape[0]):
        key = (merges[m, 0] << 32) | merges[m, 1]
        i = table_slot(key, mask)
        while keys[i] >= 0:
            i = (i + 1) & mask
        keys[i], values[i] = key, 256 + m
    return keys, values


@njit(cache=True, nogil=True)
def merge_lookup(table, left, right):
    """The id that merging (left, right) makes, or -1 when it is not a merge."""
    keys, values = table
    key = (left << 32) | right
    mask = keys.shape[0] - 1
    i = table_slot(key, mask)
    while keys[i] >= 0:
        if keys[i] == key:
            return values[i]
        i = (i + 1) & mask
    return -1


@njit(cache=True, nogil=True)
def _merge_chunk(ids, length, table):
    """``encode_chunk_reference`` on ``ids[:length]`` in place; returns the new length."""
    while length > 1:
        best = -1
        left = right = 0
        for i in range(length - 1):
            made = merge_lookup(table, ids[i], ids[i + 1])
            if made >= 0 and (best < 0 or made < best):
                best, left, right = made, ids[i], ids[i + 1]
        if best < 0:
            break
        out = i = 0
        while i < length:
            if i + 1 < length and ids[i] == left and ids[i + 1] == right:
                ids[out] = best
                i += 2
            else:
                ids[out] = ids[i]
                i += 1
            out += 1
        length = out
    return length


@njit(cache=True, nogil=True)
def encode_chunks(data, offsets, byte_ids, table):
    """Encode n chunks at once: ``data`` (N,) uint8 their bytes, ``offsets`` (n+1,) ->
    (ids (M,) int64, id_offsets (n+1,)), chunk c's ids being ids[id_offsets[c]:id_offsets[c+1]]."""
    ids = np.empty(data.shape[0], dtype=np.int64)
    id_offsets = np.zeros(offsets.shape[0], dtype=np.int64)
    written = 0
    for c in range(offsets.shape[0] - 1):
        start, length = offsets[c], offsets[c + 1] - offsets[c]
        for i in range(length):
            ids[written + i] = byte_ids[data[start + i]]
        written += _merge_chunk(ids[written:written + length], length, table)
        id_offsets[c + 1] = written
    return ids[:written], id_offsets


@njit(cache=True, nogil=True)
def encode_text(data, ends, byte_ids, table):
    """The ids of a whole text given as chunks (``data`` (N,) uint8, chunk ends ``ends``, as
    ``pretokenize.py::chunk_ends`` gives them): each distinct chunk is merged once
    (``encode_chunks``), then every chunk's ids are copied out in order. Returns the ids and
    where each chunk's ids end among them."""
    chunk_of, firsts = distinct_chunks(data, ends)
    distinct_data, distinct_offsets = gather_chunks(data, ends, firsts)
    ids, id_offsets = encode_chunks(distinct_data, distinct_offsets, byte_ids, table)
    id_ends = np.empty(chunk_of.shape[0], dtype=np.int64)
    total = 0
    for c in range(chunk_of.shape[0]):
        total += id_offsets[chunk_of[c] + 1] - id_offsets[chunk_of[c]]
        id_ends[c] = total
    out = np.empty(total, dtype=np.int64)
    written = 0
    for c in range(chunk_of.shape[0]):
        start, end = id_offsets[chunk_of[c]], id_offsets[chunk_of[c] + 1]
        out[written:written + end - start] = ids[start:end]
        written += end - start
    return out, id_ends


# ---------------------------------------------------------------------------- the tokenizer

class SmallerVocabularyWarning(UserWarning):
    """BPE training stopped below the vocabulary size asked for: the text had no pair left."""


class BPETokenizer:
    """A byte-level BPE tokenizer: ``merges``, a split ``pattern``, and ``special_tokens``."""

    def __init__(self, merges, *, pattern: str = GPT2_PATTERN, special_tokens=(),
                 byte_ids=None) -> None:
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.pattern = pattern
        find_chunks(pattern)  # a pattern that is not a valid regex fails here, quoted
        self.byte_ids = (np.arange(N_BYTES, dtype=np.int64) if byte_ids is None
                         else np.asarray(byte_ids, dtype=np.int64))
        if sorted(self.byte_ids.tolist()) != list(range(N_BYTES)):
            raise ValueError("byte_ids must give the 256 bytes the ids 0 to 255, each once")
        self.vocab: list[bytes] = [b""] * N_BYTES
        for b, i in enumerate(self.byte_ids.tolist()):
            self.vocab[i] = bytes([b])
        seen = set()
        for i, (a, b) in enumerate(self.merges):
            new_id = N_BYTES + i
            if not (0 <= a < new_id and 0 <= b < new_id) or (a, b) in seen:
                raise ValueError(f"merge {i} ({a}, {b}) must join two earlier ids (< {new_id}) "
                                 f"and not repeat an earlier merge")
            seen.add((a, b))
            self.vocab.append(self.vocab[a] + self.vocab[b])
        specials = list(special_tokens)
        if len(set(specials)) != len(specials) or not all(specials):
            raise ValueError(f"special tokens must be distinct non-empty strings: {specials}")
        self.special_tokens = {s: len(self.vocab) + i for i, s in enumerate(specials)}
        self._id_bytes = self.vocab + [s.encode("utf-8") for s in specials]
        self._table = merge_table(np.array(self.merges, dtype=np.int64).reshape(-1, 2))

    @property
    def vocab_size(self) -> int:
        return len(self._id_bytes)

    # ------------------------------------------------------------------------ construction

    @classmethod
    def train(cls, text: str, vocab_size: int, *, pattern: str = GPT2_PATTERN,
              special_tokens=()) -> BPETokenizer:
        """Learn merges from ``text`` (the incremental trainer) until ``vocab_size`` ids. When
        the text runs out of pairs to merge first, the vocabulary is smaller, and a
        ``SmallerVocabularyWarning`` says so and by how much."""
        merges = train_incremental(text, vocab_size, pattern=pattern,
                                   special_tokens=special_tokens)
        tokenizer = cls(merges, pattern=pattern, special_tokens=special_tokens)
        if tokenizer.vocab_size < vocab_size:
            warnings.warn(SmallerVocabularyWarning(
                f"asked for a vocabulary of {vocab_size} ids, got {tokenizer.vocab_size}: after "
                f"{len(merges)} merges every chunk of the {len(text)} characters of text is one "
                f"token, so no pair is left to merge; give more text or a smaller vocab_size"),
                stacklevel=2)
        return tokenizer

    @classmethod
    def from_gpt2(cls, vocab_bpe_path: str | os.PathLike,
                  encoder_json_path: str | os.PathLike) -> BPETokenizer:
        """GPT-2's tokenizer from its ``vocab.bpe`` and ``encoder.json``."""
        merges, byte_ids, specials = read_gpt2_files(vocab_bpe_path, encoder_json_path)
        return cls(merges, pattern=GPT2_PATTERN, special_tokens=specials, byte_ids=byte_ids)

    # ---------------------------------------------------------------------------- encoding

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of ``text``, reading special-token strings as plain text."""
        data, ends = chunk_ends(text, self.pattern)
        return encode_text(data, ends, self.byte_ids, self._table)[0].tolist()

    def encode_ordinary_batch(self, texts, *, num_threads: int | None = None) -> list[list[int]]:
        """``encode_ordinary`` of each text, on ``num_threads`` threads (default: every core),
        as tiktoken's ``encode_ordinary_batch``. Each thread takes a run of consecutive texts
        and encodes them in one kernel call (a chunk repeated across texts is merged once);
        the kernels release the GIL, so the threads run at once."""
        texts = list(texts)
        workers = max(1, min(num_threads or os.cpu_count() or 1, len(texts)))
        bounds = np.linspace(0, len(texts), workers + 1).astype(int)
        runs = [texts[a:b] for a, b in pairwise(bounds)]
        if workers == 1:
            return self._encode_run(texts)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [ids for run in pool.map(self._encode_run, runs) for ids in run]

    def _encode_run(self, texts: list[str]) -> list[list[int]]:
        """Several texts' ids from one ``encode_text`` over their chunks laid end to end."""
        pieces = [chunk_ends(text, self.pattern) for text in texts]
        ids, id_ends = encode_text(*concatenate_chunks(pieces), self.byte_ids, self._table)
        chunk_bounds = np.cumsum([0] + [len(ends) for _, ends in pieces])
        id_bounds = np.concatenate(([0], id_ends))[chunk_bounds].tolist()
        ids = ids.tolist()
        return [ids[a:b] for a, b in pairwise(id_bounds)]

    def encode(self, text: str, *, allowed_special=()) -> list[int]:
        """The ids of ``text``. A special token in the text is an error unless it is in
        ``allowed_special`` (a collection of special tokens, or ``"all"``), as in tiktoken."""
        allowed = set(self.special_tokens if allowed_special == "all" else allowed_special)
        unknown = allowed - self.special_tokens.keys()
        if unknown:
            raise ValueError(f"allowed_special names {sorted(unknown)}, which are not special "
                             f"tokens of this tokenizer: {sorted(self.special_tokens)}")
        found = [s for s in self.special_tokens if s not in allowed and s in text]
        if found:
            raise ValueError(
                f"the text contains the special token {found[0]!r}; pass "
                f"allowed_special={{{found[0]!r}}} to encode it as its id "
                f"{self.special_tokens[found[0]]}, or use encode_ordinary for plain text")
        ids: list[int] = []
        for piece, is_special in split_on_special_tokens(text, allowed):
            if is_special:
                ids.append(self.special_tokens[piece])
            else:
                ids.extend(self.encode_ordinary(piece))
        return ids

    # ---------------------------------------------------------------------------- decoding

    def decode_bytes(self, ids) -> bytes:
        """The bytes that ``ids`` stand for; an id outside the vocabulary is an error."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"token ids must be integers, got dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= self.vocab_size)
        if np.any(bad):
            raise ValueError(f"token id {ids[bad][0]} is outside the vocabulary "
                             f"[0, {self.vocab_size})")
        return b"".join(map(self._id_bytes.__getitem__, ids.tolist()))

    def decode(self, ids) -> str:
        """The text of ``ids``; bytes that are not valid UTF-8 become U+FFFD, as in tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------------- save / load

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as text: a header line, the pattern and special tokens as JSON,
        the byte ids, then one merge ``left right`` per line."""
        lines = [FORMAT_HEADER,
                 "pattern " + json.dumps(self.pattern),
                 "special_tokens " + json.dumps(list(self.special_tokens)),
                 "byte_ids " + " ".join(map(str, self.byte_ids.tolist())),
                 f"merges {len(self.merges)}",
                 *(f"{a} {b}" for a, b in self.merges)]
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a file written by ``save``; a file of another kind or version is an error."""
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        if lines[0] != FORMAT_HEADER:
            raise ValueError(f"{path} is not a tokenizer in the format {FORMAT_HEADER!r} "
                             f"(its first line is {lines[0][:60]!r})")
        try:
            fields = {}
            for number, name in enumerate(["pattern", "special_tokens", "byte_ids", "merges"],
                                          start=2):
                label, _, value = lines[number - 1].partition(" ")
                if label != name:
                    raise ValueError(f"line {number} should start with {name!r}, got {label!r}")
                fields[name] = value
            n_merges = int(fields["merges"])
            merge_lines = lines[5:5 + n_merges]
            if len(merge_lines) != n_merges or any(line.strip() for line in lines[5 + n_merges:]):
                raise ValueError(f"expected exactly {n_merges} merge lines")
            merges = [tuple(int(x) for x in line.split(" ")) for line in merge_lines]
            if any(len(m) != 2 for m in merges):
                raise ValueError("every merge line holds two ids")
            return cls(merges, pattern=json.loads(fields["pattern"]),
                       special_tokens=json.loads(fields["special_tokens"]),
                       byte_ids=[int(x) for x in fields["byte_ids"].split(" ")])
        except (ValueError, IndexError) as error:
            raise ValueError(f"{path} is not a valid tokenizer file: {error}") from None
