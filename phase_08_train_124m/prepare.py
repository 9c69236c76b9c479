"""``python -m phase_08_train_124m.prepare INPUT --out DIR`` (or ``--fineweb --out DIR``)

Tokenizes a corpus with GPT-2's BPE into uint16 shards (``shard_file.py``), the way nanoGPT's
and llm.c's FineWeb scripts do:
- every document is preceded by the end-of-text token (50256), so documents are separated by
  it and each starts from the same "new document" context GPT-2 was trained with;
- the first ``val_tokens`` tokens of the stream form the validation shard ``val_000000.bin``;
  the rest fill ``train_000000.bin``, ``train_000001.bin``, ... of ``shard_tokens`` each (the
  last one shorter), a document running on from one shard into the next;
- documents are tokenized in parallel by a pool of worker processes, in order, with a progress
  bar of tokens;
- after each shard, ``meta.json`` records where in the document stream it ended. A run that is
  stopped continues after the last finished shard (``--out`` the same directory): it skips the
  documents already written without tokenizing them again.
The tokenizer is phase 3's ``BPETokenizer.from_gpt2`` by default, or tiktoken built from the
same two files (``--tokenizer tiktoken``); both give the same ids.
Notes: ``phase_08_train_124m/notes/01_data_shards.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phase_01_nn.command_line import UserError, plain_help, run_command
from phase_01_nn.corpus import corpus_path
from phase_03_tokenization.bpe import BPETokenizer
from phase_08_train_124m.documents import (
    fineweb_documents,
    local_documents,
    local_files,
)
from phase_08_train_124m.shard_file import read_header, write_shard

TOKENIZERS = ("gpt2", "tiktoken")
END_OF_TEXT = "<|endoftext|>"
META_FILE = "meta.json"
SETTINGS = ("source", "text_field", "tokenizer", "shard_tokens", "val_tokens")


def make_encoder(kind: str):
    """(encode(text) -> list of ids, end-of-text id, vocabulary size) for GPT-2's BPE."""
    if kind == "gpt2":
        tokenizer = BPETokenizer.from_gpt2(corpus_path("gpt2-vocab"),
                                           corpus_path("gpt2-encoder"))
        return (tokenizer.encode_ordinary, tokenizer.special_tokens[END_OF_TEXT],
                tokenizer.vocab_size)
    if kind == "tiktoken":
        from phase_03_tokenization.bench import tiktoken_gpt2

        encoding = tiktoken_gpt2()
        return encoding.encode_ordinary, encoding.eot_token, encoding.n_vocab
    raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {kind!r}")


_encoder = None


def _start_worker(kind: str) -> None:
    global _encoder
    _encoder = make_encoder(kind)


def encode_document(text: str) -> np.ndarray:
    """[end-of-text] + the document's ids, as uint16 (in a worker, with its own tokenizer).
    The text is encoded as ordinary text: a literal "<|endoftext|>" inside a document is
    text, not a separator."""
    encode, eot, _ = _encoder
    return np.array([eot, *encode(text)], dtype=np.uint16)


class ShardWriter:
    """Fills the validation shard, then training shards, from documents' ids in order, and
    records after each shard where it ended: (document index, tokens of it written)."""

    def __init__(self, out: Path, meta: dict) -> None:
        self.out, self.meta = out, meta
        self.buffer = np.empty(self._capacity(), dtype=np.uint16)
        self.filled = 0

    def _capacity(self) -> int:
        return self.meta["val_tokens"] if not self.meta["shards"] else self.meta["shard_tokens"]

    def _next_name(self) -> str:
        if not self.meta["shards"]:
            return "val_000000.bin"
        return f"train_{len(self.meta['shards']) - 1:06d}.bin"

    def add(self, ids: np.ndarray, index: int, skip: int = 0) -> None:
        """Append document ``index``'s ids from ``skip`` on, closing every shard it fills."""
        used = skip
        while used < len(ids):
            take = min(len(ids) - used, len(self.buffer) - self.filled)
            self.buffer[self.filled:self.filled + take] = ids[used:used + take]
            self.filled += take
            used += take
            if self.filled == len(self.buffer):
                self._close_shard(end=(index, used))

    def _close_shard(self, end: tuple[int, int]) -> None:
        name = self._next_name()
        write_shard(self.out / name, self.buffer[:self.filled])
        self.meta["shards"].append({"file": name, "tokens": self.filled, "end": list(end)})
        write_meta(self.out, self.meta)
        self.buffer = np.empty(self._capacity(), dtype=np.uint16)
        self.filled = 0

    def finish(self, end: tuple[int, int]) -> None:
        if not self.meta["shards"]:
            raise UserError(f"the corpus ended after {self.filled} tokens, before the "
                            f"validation shard's --val-tokens {self.meta['val_tokens']} were "
                            f"filled; pass a smaller --val-tokens (a tenth of the corpus is "
                            f"usual: --val-tokens {max(self.filled // 10, 1)})")
        if self.filled:
            self._close_shard(end)
        if len(self.meta["shards"]) < 2:
            raise ValueError(f"the whole corpus went into the validation shard "
                             f"({self.meta['val_tokens']} tokens) and none is left to train "
                             f"on; pass a smaller --val-tokens")
        self.meta["complete"] = True
        write_meta(self.out, self.meta)


def write_meta(out: Path, meta: dict) -> None:
    temporary = out / (META_FILE + ".tmp")
    temporary.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, out / META_FILE)


def read_meta(data_dir: str | os.PathLike) -> dict:
    path = Path(data_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {META_FILE} in {data_dir}: not a directory written by "
                                f"python -m phase_08_train_124m.prepare")
    return json.loads(path.read_text(encoding="utf-8"))


def _resume_meta(out: Path, settings: dict) -> dict | None:
    """The saved progress in ``out`` if it was made with the same settings (its finished
    shards checked against their headers), else None for a fresh start."""
    if not (out / META_FILE).is_file():
        if any(out.glob("*.bin")):
            raise ValueError(f"{out} holds .bin files but no {META_FILE}; prepare into an "
                             f"empty directory")
        return None
    meta = read_meta(out)
    differ = [f"{k}: saved {meta.get(k)!r}, now {settings[k]!r}" for k in SETTINGS
              if meta.get(k) != settings[k]]
    if differ:
        raise ValueError(f"{out} was prepared with other settings ({'; '.join(differ)}); use "
                         f"another --out directory or delete this one")
    for shard in meta["shards"]:
        if read_header(out / shard["file"]) != shard["tokens"]:
            raise ValueError(f"{out / shard['file']} does not hold the {shard['tokens']} "
                             f"tokens {META_FILE} records; delete the directory and prepare "
                             f"again")
    return meta


def prepare(documents, out: str | os.PathLike, *, source: str, text_field: str = "text",
            tokenizer: str = "gpt2", shard_tokens: int = 100_000_000,
            val_tokens: int = 100_000_000, workers: int = 1, quiet: bool = False) -> dict:
    """Tokenize ``documents`` (an iterable of strings) into shards in ``out`` (module
    docstring); continues an unfinished run with the same settings. Returns ``meta``."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
    for name, value in (("shard_tokens", shard_tokens), ("val_tokens", val_tokens),
                        ("workers", workers)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _prepare_into(documents, out, source=source, text_field=text_field,
                             tokenizer=tokenizer, shard_tokens=shard_tokens,
                             val_tokens=val_tokens, workers=workers, quiet=quiet)
    except BaseException:
        if created and not any(out.iterdir()):  # leave no empty directory behind
            out.rmdir()
        raise


def _prepare_into(documents, out: Path, *, source: str, text_field: str, tokenizer: str,
                  shard_tokens: int, val_tokens: int, workers: int, quiet: bool) -> dict:
    settings = {"source": source, "text_field": text_field, "tokenizer": tokenizer,
                "shard_tokens": shard_tokens, "val_tokens": val_tokens}
    meta = _resume_meta(out, settings)
    if meta is not None and meta.get("complete"):
        if not quiet:
            print(f"{out} is already prepared ({len(meta['shards'])} shards); nothing to do")
        return meta
    _, eot, vocab_size = make_encoder(tokenizer)  # without GPT-2's files, fails before work
    if meta is None:
        meta = {**settings, "format": "uint16 shards, llm.c header", "eot": eot,
                "vocab_size": vocab_size, "shards": [], "complete": False}
    first_doc, skip = meta["shards"][-1]["end"] if meta["shards"] else (0, 0)
    writer = ShardWriter(out, meta)
    remaining = itertools.islice(documents, first_doc, None)
    started, count = time.perf_counter(), 0
    bar = tqdm(unit="tok", unit_scale=True, desc=f"tokenize -> {out}", disable=quiet or None)
    index = first_doc - 1
    try:
        with _encoded(remaining, tokenizer, workers) as encoded:
            for index, ids in enumerate(encoded, start=first_doc):
                writer.add(ids, index, skip if index == first_doc else 0)
                count += len(ids)
                bar.update(len(ids))
        writer.finish(end=(index + 1, 0))
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    meta["last_run"] = {"tokens": count, "seconds": round(seconds, 2),
                        "tokens_per_second": round(count / max(seconds, 1e-9))}
    write_meta(out, meta)
    return meta


class _encoded:
    """The documents' ids in order: in this process for one worker, else through a pool."""

    def __init__(self, documents, tokenizer: str, workers: int) -> None:
        self.documents, self.tokenizer, self.workers = documents, tokenizer, workers
        self.pool = None

    def __enter__(self):
        if self.workers == 1:
            _start_worker(self.tokenizer)
            return map(encode_document, self.documents)
        self.pool = multiprocessing.Pool(self.workers, initializer=_start_worker,
                                         initargs=(self.tokenizer,))
        return self.pool.imap(encode_document, self.documents, chunksize=16)

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m phase_08_train_124m.prepare",
                                     description=plain_help(__doc__.split("\n\n")[1]))
    parser.add_argument("input", nargs="?", help="a .txt file, a .jsonl file or a directory")
    parser.add_argument("--out", type=Path, required=True, help="the shard directory")
    parser.add_argument("--text-field", default="text", help="the JSONL field with the text")
    parser.add_argument("--tokenizer", default="gpt2", choices=TOKENIZERS)
    parser.add_argument("--shard-tokens", type=int, default=100_000_000)
    parser.add_argument("--val-tokens", type=int, default=100_000_000,
                        help="tokens in the validation shard (the first of the stream)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--fineweb", action="store_true",
                        help="stream FineWeb-Edu (needs 'datasets' and a network)")
    parser.add_argument("--fineweb-name", default="sample-10BT")
    args = parser.parse_args(argv)
    if args.fineweb == (args.input is not None):
        parser.error("give either an INPUT path or --fineweb, not both and not neither")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.fineweb:
        documents, source = fineweb_documents(args.fineweb_name), f"fineweb-edu/" \
            f"{args.fineweb_name}"
    else:
        files = local_files(args.input)
        missing = [str(p) for p in files if not p.is_file()]
        if missing or not files:
            raise FileNotFoundError(f"no corpus at {args.input}: give a .txt file, a "
                                    f".jsonl file or a directory of them")
        documents, source = local_documents(args.input, args.text_field), \
            str(Path(args.input).resolve())
    meta = prepare(documents, args.out, source=source, text_field=args.text_field,
                   tokenizer=args.tokenizer, shard_tokens=args.shard_tokens,
                   val_tokens=args.val_tokens, workers=args.workers)
    tokens = {split: sum(s["tokens"] for s in meta["shards"] if s["file"].startswith(split))
              for split in ("val", "train")}
    run = meta.get("last_run", {})
    print(f"{tokens['train']} training and {tokens['val']} validation tokens in "
          f"{len(meta['shards'])} shards in {args.out}/"
          + (f"; this run: {run['tokens']} tokens in {run['seconds']} s "
             f"({run['tokens_per_second']} tokens/s)" if run else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
