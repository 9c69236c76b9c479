"""``python -m phase_04_attention {seq2seq,ladder,heatmap} [options]``: the phase's experiments."""

from __future__ import annotations

from phase_01_nn.blas_threads import use_one_blas_thread

use_one_blas_thread()  # before NumPy is imported: see phase_01_nn/blas_threads.py

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from phase_01_nn.command_line import UserError, plain_help, run_command  # noqa: E402
from phase_01_nn.config_options import add_config_options, config_from_args  # noqa: E402
from phase_04_attention.heatmap import draw_heatmap, prompt_attention  # noqa: E402
from phase_04_attention.ladder import LadderConfig, load_model, run_ladder  # noqa: E402
from phase_04_attention.seq2seq_attention import (  # noqa: E402
    Seq2SeqAttentionConfig,
    run_seq2seq_attention,
)

DEFAULT_PROMPT = "ROMEO:\nBut soft, what light"
LADDER_OUT = Path("runs") / "phase_04" / "ladder"


def heatmap(args) -> int:
    checkpoint = args.checkpoint
    if not checkpoint.is_file():
        print(f"no checkpoint at {checkpoint}: training the last rung ({args.steps} steps) first")
        run_ladder(LadderConfig(rungs="6", steps=args.steps), checkpoint.parent,
                   data_path=args.data)
    model, tokenizer = load_model(checkpoint)
    if model.rung == 1:
        raise UserError(f"{checkpoint} holds the bigram rung, which has no attention; give a "
                        f"checkpoint of rung 2 or above")
    ids = np.asarray(tokenizer.encode(args.prompt), dtype=np.int64)
    weights = prompt_attention(model, ids, args.layer)
    path = draw_heatmap(weights, args.prompt, args.out / f"heatmap_layer{args.layer}.png",
                        f"rung {model.rung}, block {args.layer}: attention on the prompt")
    print(f"heatmap in {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_04_attention",
                                     description=plain_help(__doc__))
    commands = parser.add_subparsers(dest="command", required=True)
    seq2seq = commands.add_parser("seq2seq", help="reverse digits at lengths 8 to 32, with and "
                                                  "without attention")
    add_config_options(seq2seq, Seq2SeqAttentionConfig)
    ladder = commands.add_parser("ladder", help="bigram -> attention -> ... -> transformer "
                                                "block on Tiny Shakespeare")
    add_config_options(ladder, LadderConfig)
    drawing = commands.add_parser("heatmap", help="draw a trained model's attention, one "
                                                  "panel per head")
    drawing.add_argument("--checkpoint", type=Path, default=LADDER_OUT / "checkpoint.npz",
                         help="a ladder checkpoint (trained first if missing)")
    drawing.add_argument("--prompt", default=DEFAULT_PROMPT)
    drawing.add_argument("--layer", type=int, default=0, help="which block's attention")
    drawing.add_argument("--steps", type=int, default=LadderConfig.steps,
                         help="training steps if the checkpoint has to be trained")
    for sub in (ladder, drawing):
        sub.add_argument("--data", default=None,
                         help="path to tinyshakespeare.txt (default: by name)")
    for sub in (seq2seq, ladder, drawing):
        sub.add_argument("--out", type=Path, default=None,
                         help="output directory (default runs/phase_04/<command>)")
    args = parser.parse_args(argv)
    args.out = args.out or Path("runs") / "phase_04" / args.command

    if args.command == "seq2seq":
        summary = run_seq2seq_attention(config_from_args(args, Seq2SeqAttentionConfig),
                                        args.out)
        print("held-out exact match (digits right):")
    elif args.command == "ladder":
        summary = run_ladder(config_from_args(args, LadderConfig), args.out,
                             data_path=args.data)
    else:
        return heatmap(args)
    print(summary["table"])
    print(f"outputs in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
