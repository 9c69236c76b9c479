"""``python -m phase_05_transformer_numpy.train [--preset shakespeare-char] [--field value ...]``:
train a GPT on Tiny Shakespeare's characters. Every ``TrainConfig`` field is an option that
overrides the preset; ``--resume`` continues ``<out>/checkpoint.npz``. ``--workers`` splits each
batch across that many threads, each with its own part of the batch and one core
(``data_parallel.py``): on an idle 2-core machine ``--workers 2`` is the fastest way to use both
cores for ``shakespeare-char`` (55.9 s against 100.2 s); for a model as small as ``tiny`` the
threads cost more than they save. ``--threads`` sets the BLAS thread count of each worker. The
default is one: the preset's matmuls ((768, 128) @ (128, 512) and smaller) are too small to
split well, and on the shared 2-core machine of the notes a second thread made the step 9x
slower (78 ms against 694 ms, the other core busy).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

from phase_01_nn.blas_threads import VARIABLES
from phase_01_nn.command_line import UserError, plain_help, run_command
from phase_01_nn.config_options import add_config_options, config_from_args, given_options
from phase_05_transformer_numpy.presets import PRESETS, TrainConfig


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m phase_05_transformer_numpy.train",
                                     description=plain_help(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="shakespeare-char")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default runs/phase_05/<preset>)")
    parser.add_argument("--data", default=None, help="path to the corpus (default: by name)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/checkpoint.npz with its saved config "
                             "(--max-iters may extend it)")
    parser.add_argument("--threads", type=int, default=1,
                        help=f"BLAS threads (default 1; this machine has {os.cpu_count()} cores)")
    parser.add_argument("--workers", type=int, default=1,
                        help="threads that each take a part of every batch (default 1; "
                             "see data_parallel.py)")
    add_config_options(parser, TrainConfig)
    known, _ = parser.parse_known_args(argv)
    parser.set_defaults(**asdict(PRESETS[known.preset]))
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    for variable in VARIABLES:  # read when NumPy loads its BLAS, so before the import below
        os.environ[variable] = str(args.threads)
    from phase_05_transformer_numpy.training import TARGET_VAL_LOSS, run_training

    config = config_from_args(args, TrainConfig)
    out = args.out or Path("runs") / "phase_05" / args.preset
    summary = run_training(config, out, resume=args.resume, data_path=args.data,
                           given=given_options(parser, argv or []), workers=args.workers)
    if summary["val_loss"] is not None:
        print(summary["sample"])
        print(f"validation loss {summary['val_loss']:.4f} nats/char (target <= "
              f"{TARGET_VAL_LOSS}) after {summary['steps']} steps; {summary['seconds']} s in "
              f"all, {summary['tokens_per_s']:,} tokens/s while training")
    print(f"outputs in {out}/")
    if summary["stopped"] and "interrupted" not in summary["stopped"]:
        print(f"error: training stopped: {summary['stopped']}", file=sys.stderr)
        return 2
    if summary["stopped"]:
        print(f"stopped early: {summary['stopped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
