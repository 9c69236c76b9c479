"""Checkpoints as plain ``.npz`` files, written atomically and read without executing code.

Arrays go in as they are; everything else (config, step, RNG state) goes in as one JSON string
under ``"__meta__"``. Writing to a temporary file and renaming it means a run killed mid-write
leaves the previous checkpoint intact. Loading uses ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

META_KEY = "__meta__"


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"{META_KEY!r} is reserved for the metadata")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **arrays, **{META_KEY: np.array(json.dumps(meta))})
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key != META_KEY}
        if META_KEY not in data.files:
            raise ValueError(f"{path} is not a checkpoint of this project (no {META_KEY!r})")
        meta = json.loads(str(data[META_KEY]))
    return arrays, meta
