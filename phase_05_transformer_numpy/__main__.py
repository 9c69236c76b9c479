"""``python -m phase_05_transformer_numpy copy [options]``: the encoder-decoder on the copy task.
Training the GPT and sampling from it are ``python -m phase_05_transformer_numpy.train`` and
``python -m phase_05_transformer_numpy.sample``."""

from __future__ import annotations

from phase_01_nn.blas_threads import use_one_blas_thread
from phase_01_nn.command_line import plain_help, run_command  # noqa: E402

use_one_blas_thread()  # before NumPy is imported: see phase_01_nn/blas_threads.py

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from phase_01_nn.config_options import add_config_options, config_from_args  # noqa: E402
from phase_05_transformer_numpy.copy_task import (  # noqa: E402
    TARGET_LOSS,
    CopyTaskConfig,
    run_copy_task,
)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_05_transformer_numpy",
                                     description=plain_help(__doc__))
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help="encoder-decoder Transformer copying sequences")
    add_config_options(copy, CopyTaskConfig)
    copy.add_argument("--out", type=Path, default=Path("runs") / "phase_05" / "copy")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = run_copy_task(config_from_args(args, CopyTaskConfig), args.out)
    print("\n".join(summary["examples"]))
    print(f"held-out: exact copies {summary['test_exact_match']:.1%}, cross-entropy "
          f"{summary['test_nll']:.4f} nats/token (target <= {TARGET_LOSS}), after "
          f"{summary['step']} steps in {summary['seconds']} s")
    print(f"outputs in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
