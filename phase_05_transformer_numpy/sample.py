"""``python -m phase_05_transformer_numpy.sample --out runs/phase_05/shakespeare-char
--prompt "ROMEO:" [--max-new-tokens 500] [--temperature 0.8] [--top-k 200] [--seed 0]``:
continue a prompt with a trained model. The sampling options are phase 7's (``--length`` is
kept as another name for ``--max-new-tokens``). A prompt character outside the model's
vocabulary is an error that names it. Sampling runs the model on one sequence, so it uses one
BLAS thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phase_01_nn.blas_threads import use_one_blas_thread
from phase_01_nn.command_line import plain_help, run_command
from phase_01_nn.sampling_options import add_sampling_options, check_sampling_options


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_05_transformer_numpy.sample",
                                     description=plain_help(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/phase_05/shakespeare-char"),
                        help="the training run's directory (its checkpoint.npz)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint file (default <out>/checkpoint.npz)")
    add_sampling_options(parser, max_new_tokens=500, top_k=200, length_alias=True)
    args = parser.parse_args(argv)
    check_sampling_options(args)
    use_one_blas_thread()  # before NumPy is imported below
    import numpy as np

    from phase_05_transformer_numpy.training import load_model, sample_text

    model, vocab, _ = load_model(args.checkpoint or args.out / "checkpoint.npz")
    texts = [sample_text(model, vocab, args.prompt, args.max_new_tokens,
                         np.random.default_rng(args.seed + i), temperature=args.temperature,
                         top_k=args.top_k)
             for i in range(args.num_samples)]
    print("\n----------\n".join(texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
