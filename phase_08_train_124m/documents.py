"""Where the documents come from: a text file, a directory of them, JSON lines, or FineWeb-Edu.

A document is one unit of text that the end-of-text token separates from the next:
- a ``.txt`` file is one document (Tiny Shakespeare is one);
- a directory: its ``.txt`` and ``.jsonl`` files, in sorted order, each read as above;
- a ``.jsonl`` file: one document per line, the string in ``text_field`` (default "text");
- FineWeb-Edu (Penedo et al. 2024): streamed from the Hugging Face hub through the optional
  ``datasets`` package; without it, or offline, ``FineWebUnavailable`` says which is missing.
Each is a generator, so a corpus far larger than memory streams through.
Notes: ``phase_08_train_124m/notes/01_data_shards.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from phase_01_nn.command_line import UserError
from phase_01_nn.corpus import read_utf8

FINEWEB_EDU = "HuggingFaceFW/fineweb-edu"
SUFFIXES = (".txt", ".jsonl")


class FineWebUnavailable(UserError):
    """FineWeb-Edu cannot be streamed here; the message says why and what to do instead."""


def jsonl_documents(path: Path, text_field: str) -> Iterator[str]:
    try:
        yield from _jsonl_rows(path, text_field)
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x}: "
                        f"{error.reason}); convert it to UTF-8 or give another file") from None


def _jsonl_rows(path: Path, text_field: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not valid JSON ({error.msg}); a JSONL "
                                 f"corpus has one JSON object per line") from None
            if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
                keys = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise ValueError(f"{path}:{number} has no string field {text_field!r} (it has "
                                 f"{keys}); name the text field with --text-field")
            yield row[text_field]


def file_documents(path: Path, text_field: str) -> Iterator[str]:
    if path.suffix == ".jsonl":
        yield from jsonl_documents(path, text_field)
    elif path.suffix == ".txt":
        yield read_utf8(path)
    else:
        raise ValueError(f"{path} is neither a .txt nor a .jsonl file")


def local_documents(source: str | os.PathLike, text_field: str = "text") -> Iterator[str]:
    """The documents of a file or directory (module docstring), in a fixed order."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix in SUFFIXES)
        if not files:
            raise ValueError(f"the directory {source} holds no .txt or .jsonl files")
        for path in files:
            yield from file_documents(path, text_field)
    elif source.is_file():
        yield from file_documents(source, text_field)
    else:
        raise FileNotFoundError(f"no corpus at {source}: give a .txt file, a .jsonl file or a "
                                f"directory of them")


def local_files(source: str | os.PathLike) -> list[Path]:
    """The files ``local_documents`` reads, for checking before any work starts."""
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    return [source]


def fineweb_documents(name: str = "sample-10BT") -> Iterator[str]:
    """FineWeb-Edu's ``name`` subset (``sample-10BT``: 10B GPT-2 tokens), streamed."""
    try:
        import datasets
    except ImportError:
        raise FineWebUnavailable(
            "streaming FineWeb-Edu needs the optional package 'datasets' (pip install "
            "datasets) and a network connection; without them, prepare a local corpus: "
            "python -m phase_08_train_124m.prepare PATH --out DIR") from None
    try:
        rows = datasets.load_dataset(FINEWEB_EDU, name=name, split="train", streaming=True)
        for row in rows:
            yield row["text"]
    except Exception as error:  # the hub's errors vary by datasets version; all end here
        raise FineWebUnavailable(f"could not stream {FINEWEB_EDU} ({name}) from the Hugging "
                                 f"Face hub: {error}. Check the network, or prepare a local "
                                 f"corpus instead") from None
