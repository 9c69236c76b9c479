"""``python -m phase_01_nn {spirals,names,perceptron} [options]``: the phase's demos."""

from __future__ import annotations

from phase_01_nn.blas_threads import use_one_blas_thread

use_one_blas_thread()  # before NumPy is imported: see phase_01_nn/blas_threads.py

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from phase_01_nn.command_line import plain_help, run_command  # noqa: E402
from phase_01_nn.config_options import add_config_options, config_from_args  # noqa: E402
from phase_01_nn.demos import (  # noqa: E402
    NamesConfig,
    SpiralsConfig,
    run_names,
    run_perceptron,
    run_spirals,
)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_01_nn", description=plain_help(__doc__))
    commands = parser.add_subparsers(dest="command", required=True)
    spirals = commands.add_parser("spirals", help="an MLP on 3-class spirals")
    add_config_options(spirals, SpiralsConfig)
    names = commands.add_parser("names", help="Bengio et al. 2003 char MLP on names.txt")
    add_config_options(names, NamesConfig)
    names.add_argument("--data", default=None, help="path to names.txt (default: by name)")
    perceptron = commands.add_parser("perceptron", help="Rosenblatt's rule: separable vs XOR")
    perceptron.add_argument("--seed", type=int, default=0)
    for sub in (spirals, names, perceptron):
        sub.add_argument("--out", type=Path, default=None,
                         help="output directory (default runs/phase_01/<command>)")
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / "phase_01" / args.command

    if args.command == "spirals":
        summary = run_spirals(config_from_args(args, SpiralsConfig), out)
        print(f"training accuracy {summary['train_accuracy']:.2%} in {summary['seconds']} s")
    elif args.command == "names":
        summary = run_names(config_from_args(args, NamesConfig), out, args.data)
        print("\n".join(summary["samples"]))
        print(f"train {summary['train_loss']:.4f}  val {summary['val_loss']:.4f}  "
              f"test {summary['test_loss']:.4f} nats/char  ({summary['seconds']} s)")
    else:
        for name, result in run_perceptron(out, seed=args.seed).items():
            print(f"{name}: converged={result['converged']} after {result['epochs']} epochs, "
                  f"accuracy {result['accuracy']:.0%}")
    print(f"outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
