"""Load a text corpus by name — the one data loader of the project (GUIDE section 6).

Where a file is looked for, in order:
1. an explicit path, if the caller gives one;
2. ``$TFS_DATA_DIR/<file>``;
3. the user cache, ``$TFS_CACHE_DIR`` or ``~/.cache/transformers-from-scratch/<file>``;
4. the canonical public address, downloaded into the cache and checked against its SHA-256.
Offline with nothing found, the error says which file to put where. Known files found in steps
2 to 4 are checked against their SHA-256, so a truncated or edited copy is caught before training.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from phase_01_nn.command_line import UserError


@dataclass(frozen=True)
class Corpus:
    name: str
    filename: str  # relative to the data directory, e.g. "gpt2/vocab.bpe"
    url: str
    sha256: str


CORPORA = {
    corpus.name: corpus
    for corpus in [
        Corpus(
            "tinyshakespeare",
            "tinyshakespeare.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        ),
        Corpus(
            "names",
            "names.txt",
            "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
            "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        ),
        Corpus(
            "gpt2-vocab",
            "gpt2/vocab.bpe",
            "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        ),
        Corpus(
            "gpt2-encoder",
            "gpt2/encoder.json",
            "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        ),
    ]
}


class CorpusNotFoundError(FileNotFoundError):
    """The corpus is neither on disk nor downloadable; the message says where to put it."""


def cache_dir() -> Path:
    override = os.environ.get("TFS_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "transformers-from-scratch"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, corpus: Corpus) -> Path:
    actual = sha256_of(path)
    if actual != corpus.sha256:
        raise ValueError(
            f"{path} does not have the expected SHA-256 for {corpus.name!r} "
            f"(expected {corpus.sha256}, got {actual}); replace it with the file from {corpus.url}"
        )
    return path


def _download(corpus: Corpus, target: Path) -> None:
    """Download to a temporary file beside ``target``, check the hash, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(corpus.url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {corpus.filename}",
                      disable=None) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if digest.hexdigest() != corpus.sha256:
            raise ValueError(
                f"downloaded {corpus.url} but its SHA-256 is {digest.hexdigest()}, "
                f"expected {corpus.sha256}; nothing was saved"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def corpus_path(name: str, path: str | os.PathLike | None = None, *,
                download: bool = True) -> Path:
    """The local path of corpus ``name``, downloading it into the cache if needed."""
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise CorpusNotFoundError(f"no file at the given path {explicit} for corpus {name!r}")
        return explicit
    try:
        corpus = CORPORA[name]
    except KeyError:
        raise ValueError(
            f"unknown corpus {name!r}; choose one of: {', '.join(sorted(CORPORA))}, "
            f"or pass an explicit path"
        ) from None
    return fetch(corpus, download=download)


def fetch(corpus: Corpus, *, download: bool = True) -> Path:
    """Find ``corpus`` in ``$TFS_DATA_DIR`` or the cache, else download it into the cache."""
    data_dir = os.environ.get("TFS_DATA_DIR")
    candidates = ([Path(data_dir) / corpus.filename] if data_dir else []) + [
        cache_dir() / corpus.filename
    ]
    for candidate in candidates:
        if candidate.is_file():
            return _verified(candidate, corpus)
    cached = cache_dir() / corpus.filename
    reason = "downloads are turned off"
    if download:
        try:
            _download(corpus, cached)
            return cached
        except (urllib.error.URLError, OSError) as error:
            reason = f"the download failed: {error}"
    where = " or ".join(str(c) for c in candidates)
    raise CorpusNotFoundError(
        f"corpus {corpus.name!r} ({corpus.filename}) was not found and {reason}. "
        f"Put the file at {where} (set TFS_DATA_DIR to a directory holding {corpus.filename}); "
        f"it is published at {corpus.url}"
    )


def load_corpus(name: str, path: str | os.PathLike | None = None, *,
                download: bool = True) -> str:
    """The corpus ``name`` as text (UTF-8)."""
    return read_utf8(corpus_path(name, path, download=download))


def read_utf8(path: str | os.PathLike) -> str:
    """The text of ``path``; a file that is not UTF-8 is an error that names it and the byte."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text: byte {error.object[error.start]:#04x} at "
                        f"offset {error.start} ({error.reason}); convert it to UTF-8 (e.g. "
                        f"iconv -f latin1 -t utf-8) or give another file") from None
