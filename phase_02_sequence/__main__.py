"""``python -m phase_02_sequence {vanishing,adding,charlm,seq2seq} [options]``: the experiments."""

from __future__ import annotations

from phase_01_nn.blas_threads import use_one_blas_thread

use_one_blas_thread()  # before NumPy is imported: see phase_01_nn/blas_threads.py

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from phase_01_nn.command_line import plain_help, run_command  # noqa: E402
from phase_01_nn.config_options import (  # noqa: E402
    add_config_options,
    config_from_args,
    given_options,
)
from phase_02_sequence.adding import AddingConfig, run_adding  # noqa: E402
from phase_02_sequence.experiments import (  # noqa: E402
    CharLMRunConfig,
    Seq2SeqRunConfig,
    run_charlm,
    run_seq2seq,
)
from phase_02_sequence.vanishing import VanishingConfig, run_vanishing  # noqa: E402

CONFIGS = {"vanishing": VanishingConfig, "adding": AddingConfig, "charlm": CharLMRunConfig,
           "seq2seq": Seq2SeqRunConfig}
HELP = {"vanishing": "gradient norm against distance, RNN vs LSTM, before and after training",
        "adding": "the adding problem at T = 50 and 100: LSTM vs vanilla RNN",
        "charlm": "a char-level LSTM on Tiny Shakespeare (truncated BPTT, resumable)",
        "seq2seq": "encoder-decoder LSTM reversing digit strings"}


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_02_sequence",
                                     description=plain_help(__doc__))
    commands = parser.add_subparsers(dest="command", required=True)
    subs = {}
    for name, config_class in CONFIGS.items():
        sub = subs[name] = commands.add_parser(name, help=HELP[name])
        add_config_options(sub, config_class)
        sub.add_argument("--out", type=Path, default=None,
                         help=f"output directory (default runs/phase_02/{name})")
        if name == "charlm":
            sub.add_argument("--data", default=None,
                             help="path to tinyshakespeare.txt (default: by name)")
            sub.add_argument("--resume", action="store_true",
                             help="continue from <out>/checkpoint.npz with its saved config")
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / "phase_02" / args.command
    config = config_from_args(args, CONFIGS[args.command])

    if args.command == "vanishing":
        summary = run_vanishing(config, out)
        for key in ("rnn_init", "rnn_trained", "lstm_init", "lstm_trained"):
            print(key, {k: f"{v:.3g}" for k, v in summary[key].items()})
    elif args.command == "adding":
        summary = run_adding(config, out)
        print(f"baseline (predict 1): MSE {summary['baseline_mse']:.4f}")
        for name, run in summary["runs"].items():
            print(f"{name}: final test MSE {run['final_test_mse']:.4f} "
                  f"(best {run['best_test_mse']:.4f}) in {run['seconds']} s")
    elif args.command == "charlm":
        summary = run_charlm(config, out, data_path=args.data, resume=args.resume,
                             given=given_options(subs["charlm"], argv))
        if summary["stopped"] and "interrupted" not in summary["stopped"]:
            print(f"error: training stopped: {summary['stopped']}", file=sys.stderr)
            return 2
        print(summary["sample"])
        print(f"validation loss {summary['val_loss']:.4f} nats/char after {summary['steps']} "
              f"steps ({summary['seconds']} s)")
        if summary["stopped"]:
            print(f"stopped early: {summary['stopped']}")
    else:
        summary = run_seq2seq(config, out)
        print("\n".join(summary["examples"]))
        print(f"held-out exact match {summary['test_exact_match']:.2%} on {summary['n_test']} "
              f"strings ({summary['seconds']} s)")
    print(f"outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
