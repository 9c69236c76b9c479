"""Checkpoints as plain ``.npz`` files, written so that nothing is lost, and read without
executing code.

Arrays go in as they are; everything else (config, step, RNG state) goes in as one JSON string
under ``"__meta__"``. Loading uses ``allow_pickle=False``. What makes a checkpoint safe, here
for NumPy and reused by the torch trainers of phases 7 and 8 (``atomic_write`` takes any
writer):

- atomic: the bytes go to ``<name>.tmp`` in the same directory, are flushed to the disk
  (``fsync``), and only then renamed over the old file; the directory is synced so the rename
  itself survives a power cut. A run killed mid-write, or a full disk, leaves the old checkpoint
  as it was, and a stale ``.tmp`` is removed at the next start (``remove_stale_temporaries``);
- checked: the SHA-256 of the file's bytes goes in ``<name>.sha256`` beside it and is verified
  on load, so flipped or missing bytes are an error that names the file instead of a run that
  trains on garbage. The checkpoint it replaces is kept as ``<stem>.previous<suffix>`` (with its
  own checksum), and the error offers it;
- finite: a state with a non-finite weight is never written (``refuse_non_finite``), so a
  diverged run cannot overwrite the last good checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from phase_01_nn.command_line import UserError
from phase_01_nn.corpus import sha256_of

META_KEY = "__meta__"
CHECKSUM_SUFFIX = ".sha256"
TEMPORARY_SUFFIX = ".tmp"


class CheckpointError(UserError):
    """A checkpoint that cannot be used (missing, truncated, corrupted, not ours)."""


class NonFiniteError(UserError, FloatingPointError):
    """A loss or a weight became inf or NaN; nothing was written."""


def previous_path(path: str | os.PathLike) -> Path:
    """Where the checkpoint that ``path`` replaced is kept: ``ckpt.pt`` -> ``ckpt.previous.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def checksum_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _temporary(path: Path) -> Path:
    return path.with_name(path.name + TEMPORARY_SUFFIX)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the ``.tmp`` files a crash during a write of ``path`` may have left; returns them."""
    path = Path(path)
    stale = [t for t in (_temporary(path), _temporary(checksum_path(path))) if t.exists()]
    for temporary in stale:
        temporary.unlink()
    return stale


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_synced(path: Path, write: Callable[[BinaryIO], object]) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _keep_previous(path: Path) -> None:
    """Move the current checkpoint and its checksum aside. The old checksum goes first, so that
    at no moment does a checksum sit beside a file it does not describe."""
    if not path.exists():
        return
    previous = previous_path(path)
    checksum_path(previous).unlink(missing_ok=True)
    os.replace(path, previous)
    if checksum_path(path).exists():
        os.replace(checksum_path(path), checksum_path(previous))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write a checkpoint through ``write(handle)`` as the module docstring says: temporary
    file, fsync, checksum, the old one kept as previous, rename, directory fsync. On any
    failure the temporaries are removed and the existing checkpoint is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary, checksum_temporary = _temporary(path), _temporary(checksum_path(path))
    try:
        _write_synced(temporary, write)
        digest = sha256_of(temporary)
        _write_synced(checksum_temporary, lambda h: h.write(f"{digest}  {path.name}\n".encode()))
    except OSError as error:
        temporary.unlink(missing_ok=True)
        checksum_temporary.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = f"the checkpoint {path} is kept as it was" if path.exists() else \
                "no checkpoint was written"
            raise CheckpointError(f"no space left on the device while writing {path}; {kept}. "
                                  f"Free some space, then run again with --resume") from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        checksum_temporary.unlink(missing_ok=True)
        raise
    _keep_previous(path)
    os.replace(checksum_temporary, checksum_path(path))
    os.replace(temporary, path)
    _fsync_directory(path.parent)
    return path


def offer_previous(path: str | os.PathLike) -> str:
    """What to do about a bad checkpoint: use the one it replaced, if it is there."""
    previous = previous_path(path)
    if previous.is_file():
        return (f"the checkpoint before it is kept at {previous}: rename it to {Path(path).name} "
                f"(and {checksum_path(previous).name} to {checksum_path(path).name}) to continue "
                f"from it, or start the run again")
    return "no earlier checkpoint is kept; start the run again without --resume"


def verify_checksum(path: str | os.PathLike) -> None:
    """Compare the file's SHA-256 with the one recorded when it was written. A checkpoint with
    no checksum file (written before checksums existed) is accepted as it is."""
    path = Path(path)
    recorded = checksum_path(path)
    if not recorded.is_file():
        return
    expected = recorded.read_text(encoding="utf-8").split()[0]
    actual = sha256_of(path)
    if actual != expected:
        raise CheckpointError(f"the checkpoint {path} is corrupted: its SHA-256 is {actual[:16]}…"
                              f" but it was written as {expected[:16]}…; {offer_previous(path)}")


def check_checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a file with a matching checksum; else a FileNotFoundError or a
    CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        hint = f"; {offer_previous(path)}" if previous_path(path).is_file() else ""
        raise FileNotFoundError(f"no checkpoint at {path}{hint}")
    verify_checksum(path)
    return path


def refuse_non_finite(path: str | os.PathLike, names: Iterable[str], losses: dict | None = None,
                      *, step: int | None = None) -> None:
    """Raise NonFiniteError, naming what is not finite (at ``step``), instead of writing
    ``path``."""
    bad = list(names) + [f"{k} loss {v}" for k, v in (losses or {}).items()
                         if not np.isfinite(v)]
    if bad:
        kept = what_is_kept(path)
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        when = f" at step {step}" if step is not None else ""
        raise NonFiniteError(f"not finite{when}: {shown}; the state was not saved and {kept}. "
                             f"{LOWER_THE_RATE}")


LOWER_THE_RATE = "Lower --lr or raise the warmup, then --resume or start again"


def what_is_kept(path: str | os.PathLike) -> str:
    """How a stopped run's message ends: the checkpoint it keeps, or that there is none."""
    if Path(path).exists():
        return f"the last good checkpoint {path} is kept"
    return "no checkpoint was written (none was due yet)"


def non_finite_arrays(arrays: dict[str, np.ndarray]) -> list[str]:
    return [name for name, a in arrays.items()
            if np.issubdtype(np.asarray(a).dtype, np.floating) and not np.isfinite(a).all()]


def data_fingerprint(data: np.ndarray | str) -> str:
    """The SHA-256 of a run's training data (token ids or text): saved in the checkpoint and
    compared on resume, so another text of the same length is caught."""
    raw = data.encode("utf-8") if isinstance(data, str) else np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(raw).hexdigest()


def check_same_data(path: str | os.PathLike, meta: dict, data: np.ndarray | str) -> None:
    """A resume on other data than the checkpoint's is an error naming both; checkpoints from
    before fingerprints were saved are compared by length only."""
    size = len(data)
    saved_size = meta.get("data_tokens", size)
    saved = meta.get("data_sha256")
    if saved_size == size and (saved is None or saved == data_fingerprint(data)):
        return
    detail = (f"{saved_size} tokens" + (f", SHA-256 {saved[:12]}…" if saved else "")
              + f"; the data given is {size} tokens, SHA-256 {data_fingerprint(data)[:12]}…")
    raise UserError(f"{path} was trained on other data ({detail}); give the corpus it was "
                    f"trained on (--data), or start a new run in another --out directory")


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    if META_KEY in arrays:
        raise ValueError(f"{META_KEY!r} is reserved for the metadata")
    refuse_non_finite(path, non_finite_arrays(arrays))
    meta_array = np.array(json.dumps(meta))
    return atomic_write(path, lambda handle: np.savez(handle, **arrays, **{META_KEY: meta_array}))


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    path = check_checkpoint_file(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if META_KEY not in data.files:
                raise CheckpointError(f"{path} is not a checkpoint of this project "
                                      f"(no {META_KEY!r})")
            arrays = {key: data[key] for key in data.files if key != META_KEY}
            meta = json.loads(str(data[META_KEY]))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"the checkpoint {path} cannot be read ({error}): it is truncated "
                              f"or corrupted; {offer_previous(path)}") from error
    return arrays, meta
