"""One shard of tokens on disk: a 1024-byte header, then the token ids as little-endian uint16.

    header: 256 int32 = [MAGIC, VERSION, n_tokens, 0, 0, ...]
    body:   n_tokens uint16

This is llm.c's layout (``dev/data/data_common.py``: magic 20240520, version 1), so shards
written here and llm.c's FineWeb shards read the same way. uint16 holds GPT-2's 50257 ids in
half the space of int32, and a fixed-size header lets a reader memory-map the body at a known
offset, so a 100M-token shard costs no memory until its pages are touched.
Notes: ``phase_08_train_124m/notes/01_data_shards.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_TOKEN = np.iinfo(np.uint16).max


class ShardFormatError(ValueError):
    """A file that is not a valid token shard; the message says what is wrong with it."""


def write_shard(path: str | os.PathLike, tokens) -> Path:
    """Write ``tokens`` (ids in [0, 65535]) as a shard, atomically: a temporary file, renamed,
    so a run stopped mid-write leaves no half shard under the real name."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"a shard holds a 1-D array of token ids, got shape {tokens.shape}")
    if tokens.size and not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got an array of {tokens.dtype} (first "
                         f"values {tokens[:3].tolist()}); casting would silently truncate them")
    if tokens.size and (tokens.min() < 0 or tokens.max() > MAX_TOKEN):
        raise ValueError(f"token ids must be in [0, {MAX_TOKEN}] to fit uint16, got ids from "
                         f"{tokens.min()} to {tokens.max()}")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (MAGIC, VERSION, tokens.size)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(header.tobytes())
        handle.write(tokens.astype("<u2").tobytes())
    os.replace(temporary, path)
    return path


def read_header(path: str | os.PathLike) -> int:
    """The token count of the shard at ``path``, after checking its header against its size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no shard at {path}")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ShardFormatError(f"{path} is {size} bytes, shorter than the {HEADER_BYTES}-byte "
                               f"shard header: not a token shard (or a truncated one)")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != MAGIC:
        raise ShardFormatError(f"{path} starts with {int(header[0])}, not the shard magic number "
                               f"{MAGIC}: not a token shard written by prepare (or by llm.c)")
    if header[1] != VERSION:
        raise ShardFormatError(f"{path} is a shard of version {int(header[1])}; this reader "
                               f"knows version {VERSION}")
    n_tokens = int(header[2])
    expected = HEADER_BYTES + 2 * n_tokens
    if n_tokens < 0 or size != expected:
        raise ShardFormatError(f"{path} says it holds {n_tokens} tokens ({expected} bytes) but "
                               f"is {size} bytes: truncated or corrupt; prepare it again")
    return n_tokens


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """The shard's tokens as a read-only uint16 memory map (nothing is read until used)."""
    n_tokens = read_header(path)
    if n_tokens == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n_tokens,))
