"""Training byte-level BPE: the plain reference trainer and the incremental numba trainer.

The rule both follow, so that a result is exactly reproducible:
1. cut out the special tokens, split the rest with the regex pattern, count each chunk;
2. start every chunk as its UTF-8 bytes (ids 0-255);
3. count adjacent pairs inside each chunk, weighted by the chunk's count;
4. merge the pair with the highest count, ties going to the smallest ``(left_id, right_id)``,
   left to right without overlap, into the new id ``256 + len(merges)``;
5. repeat until ``n_merges`` merges are made or no pair is left.

``train_reference`` recounts every pair after every merge: O(merges x corpus) and easy to read.
``train_incremental`` touches only the places where the chosen pair occurs and updates the
counts around them, with a max-heap to find the next pair: the same merges, thousands of times
faster. See ``phase_03_tokenization/notes/03_fast_bpe.md``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from itertools import pairwise

import numpy as np
from numba import njit

from phase_03_tokenization.pretokenize import (
    GPT2_PATTERN,
    chunk_counts,
    distinct_chunk_arrays,
    table_capacity,
    table_slot,
)

N_BYTES = 256


def merge_count(vocab_size: int, special_tokens=()) -> int:
    """How many merges a vocabulary of ``vocab_size`` holds: it counts the 256 bytes, every
    merge and every special token, as GPT-2's 50257 = 256 + 50000 + 1 does."""
    n_merges = vocab_size - N_BYTES - len(tuple(special_tokens))
    if n_merges < 0:
        raise ValueError(
            f"vocab_size {vocab_size} is smaller than the 256 byte tokens plus "
            f"{len(tuple(special_tokens))} special tokens")
    return n_merges


# ---------------------------------------------------------------------------- the reference

def count_pairs(words: list[tuple[list[int], int]]) -> Counter[tuple[int, int]]:
    """Every adjacent pair of every word, weighted by the word's count."""
    counts: Counter[tuple[int, int]] = Counter()
    for ids, n in words:
        for pair in pairwise(ids):
            counts[pair] += n
    return counts


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` replaced by ``new_id``, left to right, no
    overlap: merging (a, a) in [a, a, a] gives [new, a]."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_reference(text: str, vocab_size: int, *, pattern: str = GPT2_PATTERN,
                    special_tokens=()) -> list[tuple[int, int]]:
    """The merges of BPE on ``text``, recounting every pair before every merge."""
    n_merges = merge_count(vocab_size, special_tokens)
    words = [(list(chunk), n) for chunk, n in chunk_counts(text, pattern, special_tokens).items()]
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        counts = count_pairs(words)
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        new_id = N_BYTES + len(merges)
        words = [(merge_pair(ids, pair, new_id), n) for ids, n in words]
        merges.append(pair)
    return merges


# -------------------------------------------------------------------------- the fast trainer

def train_incremental(text: str, vocab_size: int, *, pattern: str = GPT2_PATTERN,
                      special_tokens=()) -> list[tuple[int, int]]:
    """The same merges as ``train_reference``, from incremental pair counts (numba)."""
    n_merges = merge_count(vocab_size, special_tokens)
    # the chunks that have a pair (two bytes or more), counted without a string per chunk
    data, offsets, weights = distinct_chunk_arrays(text, pattern, special_tokens, min_length=2)
    merges = incremental_merges(data, offsets, weights, n_merges)
    return [(int(a), int(b)) for a, b in merges]


@njit(cache=True)
def _key(a, b):
    return (a << 32) | b


@njit(cache=True)
def _find_pair(slots, keys, key):
    """The slot of pair ``key`` in the open-addressing table ``slots`` (slot -> pair number,
    -1 empty; ``keys[number]`` is the pair's key), or the empty slot where it would go."""
    mask = slots.shape[0] - 1
    i = table_slot(key, mask)
    while slots[i] >= 0 and keys[slots[i]] != key:
        i = (i + 1) & mask
    return i


@njit(cache=True)
def _intern_pair(slots, keys, counts, heads, n_pairs, key):
    """The number of pair ``key``, given the next free number if it is new (count 0, no
    records); the arrays grow and the table is rebuilt, kept at most half full, as needed.
    Returns the (possibly new) arrays, the pair count and the number."""
    i = _find_pair(slots, keys, key)
    if slots[i] >= 0:
        return slots, keys, counts, heads, n_pairs, slots[i]
    if n_pairs == keys.shape[0]:
        keys, counts, heads = (np.concatenate((keys, np.empty(n_pairs, np.int64))),
                               np.concatenate((counts, np.zeros(n_pairs, np.int64))),
                               np.concatenate((heads, np.full(n_pairs, -1, np.int64))))
    keys[n_pairs] = key
    if 2 * (n_pairs + 1) > slots.shape[0]:
        slots = np.full(2 * slots.shape[0], -1, dtype=np.int64)
        for number in range(n_pairs + 1):
            slots[_find_pair(slots, keys, keys[number])] = number
    else:
        slots[i] = n_pairs
    return slots, keys, counts, heads, n_pairs + 1, n_pairs


@njit(cache=True)
def _append_record(rec_pos, rec_next, n_rec, heads, pair, pos):
    """Push ``pos`` onto the linked list of places where pair number ``pair`` occurs; arrays
    grow."""
    if n_rec == rec_pos.shape[0]:
        bigger_pos = np.empty(2 * n_rec, dtype=np.int64)
        bigger_next = np.empty(2 * n_rec, dtype=np.int64)
        bigger_pos[:n_rec] = rec_pos
        bigger_next[:n_rec] = rec_next
        rec_pos, rec_next = bigger_pos, bigger_next
    rec_pos[n_rec] = pos
    rec_next[n_rec] = heads[pair]
    heads[pair] = n_rec
    return rec_pos, rec_next, n_rec + 1


@njit(cache=True)
def incremental_merges(data, offsets, weights, n_merges):
    """BPE merges of the chunks in (``data``, ``offsets``, ``weights``), as (k, 2) int64.

    Every byte of every chunk is a node of a doubly linked list (``prev``/``nxt``), holding its
    current token id in ``sym``. Each pair key ``left << 32 | right`` ever seen gets a number
    from an open-addressing hash table (``_intern_pair``); ``counts[number]`` is its weighted
    count and ``heads[number]`` starts a linked list of positions where it occurred (entries go
    stale as merges happen and are checked when read). The heap holds (-count, left, right); an
    entry whose count is out of date is re-pushed with the current count when popped (counts of
    old pairs only fall, so the first up-to-date entry popped is the true maximum, ties to the
    smallest pair).
    """
    n = data.shape[0]
    sym = data.astype(np.int64)
    prev = np.empty(n, dtype=np.int64)
    nxt = np.empty(n, dtype=np.int64)
    weight = np.empty(n, dtype=np.int64)
    alive = np.ones(n, dtype=np.bool_)
    for c in range(weights.shape[0]):
        for i in range(offsets[c], offsets[c + 1]):
            prev[i] = i - 1 if i > offsets[c] else -1
            nxt[i] = i + 1 if i + 1 < offsets[c + 1] else -1
            weight[i] = weights[c]

    slots = np.full(table_capacity(16), -1, dtype=np.int64)
    keys = np.empty(16, dtype=np.int64)
    counts = np.zeros(16, dtype=np.int64)
    heads = np.full(16, -1, dtype=np.int64)
    n_pairs = 0
    rec_pos = np.empty(max(n, 16), dtype=np.int64)
    rec_next = np.empty(max(n, 16), dtype=np.int64)
    n_rec = 0
    for i in range(n):
        if nxt[i] >= 0:
            slots, keys, counts, heads, n_pairs, pair = _intern_pair(
                slots, keys, counts, heads, n_pairs, _key(sym[i], sym[nxt[i]]))
            counts[pair] += weight[i]
            rec_pos, rec_next, n_rec = _append_record(rec_pos, rec_next, n_rec, heads, pair, i)

    heap = [(np.int64(0), np.int64(0), np.int64(0)) for _ in range(0)]
    for pair in range(n_pairs):
        heap.append((-counts[pair], keys[pair] >> 32, keys[pair] & 0xFFFFFFFF))
    heapq.heapify(heap)

    merges = np.empty((n_merges, 2), dtype=np.int64)
    done = 0
    positions = np.empty(16, dtype=np.int64)
    touched = np.empty(16, dtype=np.int64)
    while done < n_merges and len(heap) > 0:
        neg_count, a, b = heapq.heappop(heap)
        merged = slots[_find_pair(slots, keys, _key(a, b))]  # every pair in the heap has one
        current = counts[merged]
        if current != -neg_count:
            if current > 0:
                heapq.heappush(heap, (-current, a, b))
            continue
        new_id = 256 + done
        merges[done, 0] = a
        merges[done, 1] = b
        done += 1

        n_pos = 0
        r = heads[merged]
        heads[merged] = -1
        while r != -1:
            if n_pos == positions.shape[0]:
                bigger = np.empty(2 * n_pos, dtype=np.int64)
                bigger[:n_pos] = positions
                positions = bigger
            positions[n_pos] = rec_pos[r]
            n_pos += 1
            r = rec_next[r]
        n_touched = 0
        for p in np.sort(positions[:n_pos]):  # left to right inside each chunk
            q = nxt[p]
            if not alive[p] or sym[p] != a or q < 0 or sym[q] != b:
                continue  # a stale record, or consumed by the merge just to its left
            w = weight[p]
            left, right = prev[p], nxt[q]
            if n_touched + 2 > touched.shape[0]:
                bigger = np.empty(2 * touched.shape[0], dtype=np.int64)
                bigger[:n_touched] = touched[:n_touched]
                touched = bigger
            if left >= 0:
                counts[slots[_find_pair(slots, keys, _key(sym[left], a))]] -= w
                slots, keys, counts, heads, n_pairs, new = _intern_pair(
                    slots, keys, counts, heads, n_pairs, _key(sym[left], new_id))
                counts[new] += w
                rec_pos, rec_next, n_rec = _append_record(rec_pos, rec_next, n_rec, heads,
                                                          new, left)
                touched[n_touched] = new
                n_touched += 1
            if right >= 0:
                counts[slots[_find_pair(slots, keys, _key(b, sym[right]))]] -= w
                slots, keys, counts, heads, n_pairs, new = _intern_pair(
                    slots, keys, counts, heads, n_pairs, _key(new_id, sym[right]))
                counts[new] += w
                rec_pos, rec_next, n_rec = _append_record(rec_pos, rec_next, n_rec, heads,
                                                          new, p)
                touched[n_touched] = new
                n_touched += 1
                prev[right] = p
            counts[merged] -= w
            sym[p] = new_id
            nxt[p] = right
            alive[q] = False
        counts[merged] = 0
        for pair in np.unique(touched[:n_touched]):  # a new pair touched at many positions
            count = counts[pair]                     # needs one entry, with its final count
            if count > 0:
                key = keys[pair]
                heapq.heappush(heap, (-count, key >> 32, key & 0xFFFFFFFF))
    return merges[:done]
