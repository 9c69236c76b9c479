"""``python -m phase_03_tokenization.bench``: this phase's tokenizers against their references.

One table, every case measured in the same run, median of ``--repeats`` runs (the slow plain
reference trainer runs once), with the ratio ours / reference (below 1: ours is faster):

- training on Tiny Shakespeare to vocabulary 4096 with the GPT-2 pattern: the incremental numba
  trainer against Hugging Face ``tokenizers`` (the same split regex, byte-level, no prefix
  space, no normalizer) and against ``train_reference``, whose merges must be identical;
- with ``--large``: training on the Python standard library's ``.py`` files concatenated
  (20 MB or more, built on this machine) to vocabulary 32768, against ``tokenizers``;
- encoding all of Tiny Shakespeare with GPT-2's merges against tiktoken (one thread each,
  ids identical); ours with an empty chunk cache, as on a first call.

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
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


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


def stdlib_corpus(min_bytes: int = 20_000_000) -> str:
    """The standard library's ``.py`` files (not site-packages), in sorted order, concatenated
    until at least ``min_bytes`` of UTF-8; undecodable bytes become U+FFFD."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        parts.append(text)
        size += len(text.encode("utf-8"))
        if size >= min_bytes:
            return "".join(parts)
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
    ours, tokenizer = median_seconds(lambda: BPETokenizer.train(text, vocab_size), repeats)
    theirs, hf = median_seconds(lambda: train_tokenizers(text, vocab_size), repeats)
    rows = [_row(case, ours, "HF tokenizers", theirs, goal,
                 f"vocab {tokenizer.vocab_size} vs {hf.get_vocab_size()}")]
    if with_reference:
        slow, merges = median_seconds(lambda: train_reference(text, vocab_size), 1)
        same = "identical" if merges == tokenizer.merges else "DIFFERENT"
        rows.append(_row(case, ours, "train_reference (1 run)", slow, "",
                         f"merges {same} ({len(merges)})"))
    return rows


def encoding_rows(text: str, repeats: int) -> list[dict]:
    ours = BPETokenizer.from_gpt2(corpus_path("gpt2-vocab"), corpus_path("gpt2-encoder"))
    reference = tiktoken_gpt2()

    def cold():
        ours.clear_cache()  # every repeat starts with no chunk encoded yet
        return ours.encode_ordinary(text)

    ours_s, ids = median_seconds(cold, repeats)
    warm_s, _ = median_seconds(lambda: ours.encode_ordinary(text), repeats)
    theirs_s, expected = median_seconds(lambda: reference.encode_ordinary(text), repeats)
    same = "identical" if ids == expected else "DIFFERENT"
    case = f"encode Tiny Shakespeare with GPT-2 ({len(ids)} ids)"
    return [_row(case, ours_s, "tiktoken", theirs_s, "<= 2x", f"ids {same}"),
            _row(case + ", cache warm", warm_s, "tiktoken", theirs_s, "", "")]


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
    rows = training_rows("Tiny Shakespeare", shakespeare, 4096, args.repeats, "<= 1.0x",
                         not args.no_reference)
    if args.large:
        rows += training_rows("stdlib .py", stdlib_corpus(), 32768, max(1, args.repeats // 2),
                              "<= 1.5x", with_reference=False)
    rows += encoding_rows(shakespeare, args.repeats)

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
