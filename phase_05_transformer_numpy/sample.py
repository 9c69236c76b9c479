"""``python -m phase_05_transformer_numpy.sample --out runs/phase_05/shakespeare-char
--prompt "ROMEO:" [--length 500] [--temperature 0.8] [--top-k 200] [--seed 0]``: continue a
prompt with a trained model. A prompt character outside the model's vocabulary is an error that
names it. Sampling runs the model on one sequence, so it uses one BLAS thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phase_01_nn.blas_threads import use_one_blas_thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_05_transformer_numpy.sample",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/phase_05/shakespeare-char"),
                        help="the training run's directory (its checkpoint.npz)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint file (default <out>/checkpoint.npz)")
    parser.add_argument("--prompt", default="\n")
    parser.add_argument("--length", type=int, default=500, help="characters to draw")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    use_one_blas_thread()  # before NumPy is imported below
    import numpy as np

    from phase_05_transformer_numpy.training import load_model, sample_text

    try:
        model, vocab, _ = load_model(args.checkpoint or args.out / "checkpoint.npz")
        text = sample_text(model, vocab, args.prompt, args.length,
                           np.random.default_rng(args.seed), temperature=args.temperature,
                           top_k=args.top_k)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
