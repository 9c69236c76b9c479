"""``python -m phase_03_tokenization {bpe,word2vec} [options]``: the phase's demos.
Benchmarks: ``python -m phase_03_tokenization.bench``."""

from __future__ import annotations

from phase_01_nn.blas_threads import use_one_blas_thread

use_one_blas_thread()  # before NumPy is imported: see phase_01_nn/blas_threads.py

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from phase_01_nn.command_line import plain_help, run_command  # noqa: E402
from phase_01_nn.config_options import add_config_options, config_from_args  # noqa: E402
from phase_03_tokenization.demos import (  # noqa: E402
    BPEConfig,
    Word2VecConfig,
    run_bpe,
    run_word2vec,
)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_03_tokenization",
                                     description=plain_help(__doc__))
    commands = parser.add_subparsers(dest="command", required=True)
    bpe = commands.add_parser("bpe", help="train byte-level BPE on Tiny Shakespeare")
    add_config_options(bpe, BPEConfig)
    word2vec = commands.add_parser("word2vec", help="skip-gram word vectors on Tiny Shakespeare")
    add_config_options(word2vec, Word2VecConfig)
    word2vec.add_argument("--query", nargs="*", default=None,
                          help="words whose nearest neighbours to print")
    for sub in (bpe, word2vec):
        sub.add_argument("--data", default=None, help="path to the corpus (default: by name)")
        sub.add_argument("--out", type=Path, default=None,
                         help="output directory (default runs/phase_03/<command>)")
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / "phase_03" / args.command

    if args.command == "bpe":
        summary = run_bpe(config_from_args(args, BPEConfig), out, args.data)
        print(f"vocabulary {summary['vocab_size']} trained in {summary['train_seconds']} s; "
              f"{summary['characters_per_token']} characters per token")
        print("longest tokens:", summary["longest_tokens"])
    else:
        config = config_from_args(args, Word2VecConfig)
        summary = (run_word2vec(config, out, args.data, args.query) if args.query
                   else run_word2vec(config, out, args.data))
        for query, neighbours in summary["neighbours"].items():
            print(f"{query:>8}: " + ", ".join(f"{w} {s:.2f}" for w, s in neighbours))
        print(f"final loss {summary['final_loss']:.3f} after {summary['steps']} steps "
              f"({summary['seconds']} s)")
    print(f"outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
