"""``python -m phase_03_tokenization.bench``: this phase's tokenizers against their references.

One table, every case measured in the same run, ours and the reference called alternately,
median of ``--repeats`` runs each (the slow plain reference trainer runs once), with the ratio
ours / reference (below 1: ours is faster):

- training on Tiny Shakespeare to vocabulary 4096 with the GPT-2 pattern: the incremental numba
  trainer against Hugging Face ``tokenizers`` (the same split regex, byte-level, no prefix
  space, no normalizer) and against ``train_reference``, whose merges must be identical;
- with ``--large``: training on the Python standard library's ``.py`` files concatenated
  (20 MB or more, built on this machine) to vocabulary 32768, against ``tokenizers``;
- encoding all of Tiny Shakespeare with GPT-2's merges against tiktoken (one thread each,
  ids identical; ours keeps no cache between calls, so every call is a first call), and the
  same text cut into its paragraphs as a batch on every core, against tiktoken's
  ``encode_ordinary_batch``; with ``--large``, the same two on the standard library's ``.py``
  files (one text of 20 MB, then the files as a batch). MB/s are of UTF-8 input.

The table goes to stdout and to ``<out>/bench.md``. Absolute times drift on a shared machine;
the ratios, measured side by side, hold better.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import numba
import tiktoken
import tokenizers
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from phase_01_nn.command_line import plain_help, run_command
from phase_01_nn.corpus import corpus_path, load_corpus
from phase_03_tokenization.bpe import BPETokenizer
from phase_03_tokenization.bpe_training import train_reference
from phase_03_tokenization.pretokenize import GPT2_PATTERN


def median_seconds(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The median wall time of ``repeats`` calls, and the last call's result."""
    (seconds, result), = paired_medians([run], repeats)
    return seconds, result


def paired_medians(runs: list[Callable[[], object]], repeats: int) -> list[tuple[float, object]]:
    """Each run's median wall time over ``repeats`` rounds in which every run is called once,
    in turn (so a busy spell on a shared machine slows all of them), and its last result."""
    times: list[list[float]] = [[] for _ in runs]
    results: list[object] = [None] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            started = time.perf_counter()
            results[i] = run()
            times[i].append(time.perf_counter() - started)
    return [(statistics.median(t), r) for t, r in zip(times, results, strict=True)]


def train_tokenizers(text: str, vocab_size: int) -> tokenizers.Tokenizer:
    """Hugging Face's BPE trainer configured as ours: the GPT-2 split, then bytes (no prefix
    space, no second regex), the 256 byte symbols as the initial alphabet, no normalizer."""
    from tokenizers import Regex, models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def stdlib_files(min_bytes: int = 20_000_000) -> list[str]:
    """The standard library's ``.py`` files (not site-packages), in sorted order, until at
    least ``min_bytes`` of UTF-8; undecodable bytes become U+FFFD."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        parts.append(text)
        size += len(text.encode("utf-8"))
        if size >= min_bytes:
            return parts
    raise RuntimeError(f"the standard library at {root} holds only {size} bytes of .py files")


def tiktoken_gpt2() -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding built offline from the two local files."""
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(corpus_path("gpt2-vocab")),
                                            encoder_json_file=str(corpus_path("gpt2-encoder")))
    return tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def _row(case, ours, reference_name, reference, goal, check) -> dict:
    ratio = ours / reference if reference else None
    return {"case": case, "ours_s": round(ours, 4), "reference": reference_name,
            "reference_s": None if reference is None else round(reference, 4),
            "ratio": None if ratio is None else float(f"{ratio:.3g}"), "goal": goal,
            "check": check}


def training_rows(name: str, text: str, vocab_size: int, repeats: int, goal: str,
                  with_reference: bool) -> list[dict]:
    case = f"train {name} ({len(text.encode('utf-8')) / 1e6:.1f} MB) to {vocab_size}"
    (ours, tokenizer), (theirs, hf) = paired_medians(
        [lambda: BPETokenizer.train(text, vocab_size),
         lambda: train_tokenizers(text, vocab_size)], repeats)
    rows = [_row(case, ours, "HF tokenizers", theirs, goal,
                 f"vocab {tokenizer.vocab_size} vs {hf.get_vocab_size()}")]
    if with_reference:
        slow, merges = median_seconds(lambda: train_reference(text, vocab_size), 1)
        same = "identical" if merges == tokenizer.merges else "DIFFERENT"
        rows.append(_row(case, ours, "train_reference (1 run)", slow, "",
                         f"merges {same} ({len(merges)})"))
    return rows


def encoding_rows(name: str, text: str, documents: list[str], repeats: int) -> list[dict]:
    """``text`` encoded whole on one thread, and ``documents`` as a batch on every core, ours
    against tiktoken, alternately; the ids must be identical."""
    ours = BPETokenizer.from_gpt2(corpus_path("gpt2-vocab"), corpus_path("gpt2-encoder"))
    reference = tiktoken_gpt2()
    threads = os.cpu_count() or 1
    (ours_s, ids), (theirs_s, expected) = paired_medians(
        [lambda: ours.encode_ordinary(text), lambda: reference.encode_ordinary(text)], repeats)
    (ours_batch_s, batch), (theirs_batch_s, expected_batch) = paired_medians(
        [lambda: ours.encode_ordinary_batch(documents, num_threads=threads),
         lambda: reference.encode_ordinary_batch(documents, num_threads=threads)], repeats)
    mb = len(text.encode("utf-8")) / 1e6
    batch_mb = sum(len(d.encode("utf-8")) for d in documents) / 1e6

    def check(same: bool, seconds: float, reference_seconds: float, size: float) -> str:
        return (f"ids {'identical' if same else 'DIFFERENT'}; "
                f"{size / seconds:.1f} vs {size / reference_seconds:.1f} MB/s")

    case = f"encode {name} ({mb:.1f} MB) with GPT-2, one thread"
    batch_case = (f"encode {name} as {len(documents):,} documents with GPT-2, batch on "
                  f"{threads} threads")
    return [_row(case, ours_s, "tiktoken", theirs_s, "<= 1.0x",
                 check(ids == expected, ours_s, theirs_s, mb)),
            _row(batch_case, ours_batch_s, "tiktoken encode_ordinary_batch", theirs_batch_s,
                 "<= 1.0x", check(batch == expected_batch, ours_batch_s, theirs_batch_s,
                                  batch_mb))]


def paragraphs(text: str) -> list[str]:
    """``text`` cut after each blank line: pieces that join back to the text."""
    pieces = text.split("\n\n")
    return [piece + "\n\n" for piece in pieces[:-1]] + [pieces[-1]]


def format_table(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| case | ours (s) | reference | reference (s) | ours / reference | goal | check |",
             "|---|---:|---|---:|---:|---|---|"]
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}x"
        lines.append(f"| {r['case']} | {r['ours_s']:.3f} | {r['reference']} | "
                     f"{r['reference_s']:.3f} | {ratio} | {r['goal']} | {r['check']} |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"numba {numba.__version__}, tiktoken {tiktoken.__version__}, "
            f"tokenizers {tokenizers.__version__}")


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_03_tokenization.bench",
                                     description=plain_help(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", action="store_true",
                        help="also train on 20 MB of the standard library to vocabulary 32768")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip train_reference (minutes on Tiny Shakespeare)")
    parser.add_argument("--out", type=Path, default=Path("runs") / "phase_03" / "bench")
    args = parser.parse_args(argv)

    shakespeare = load_corpus("tinyshakespeare")
    BPETokenizer.train(shakespeare[:2000], 300).encode("numba compiles or loads its cache here")
    rows = training_rows("Tiny Shakespeare", shakespeare, 4096, args.repeats, "<= 0.25x",
                         not args.no_reference)
    if args.large:
        files = stdlib_files()
        rows += training_rows("stdlib .py", "".join(files), 32768, max(1, args.repeats // 2),
                              "<= 0.2x", with_reference=False)
    rows += encoding_rows("Tiny Shakespeare", shakespeare, paragraphs(shakespeare), args.repeats)
    if args.large:
        rows += encoding_rows("stdlib .py", "".join(files), files, max(1, args.repeats // 2))

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = format_table(rows, f"Measured {stamp} on {machine()}; medians of {args.repeats} "
                               f"runs (the large case: {max(1, args.repeats // 2)}).")
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text(table, encoding="utf-8")
    (args.out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
