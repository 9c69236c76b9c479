"""``python -m phase_05_transformer_numpy.step_profile [--steps 50] [--threads 1]
[--preset larger]``: where a training step of the ``shakespeare-char`` preset (or of phase 6's
``larger`` model: 6 layers, width 384, context 256, batch 8) spends its time, op by op.

cProfile attributes each NumPy call's time to the Python function that made it, so every op's
forward and backward appears as a line of its own (its matmuls included); the table lists them
by total time per step. Profiling adds overhead to each Python call, so the step time without
the profiler is measured and printed first.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

from phase_01_nn.blas_threads import VARIABLES
from phase_01_nn.command_line import plain_help, run_command
from phase_05_transformer_numpy.presets import TrainConfig

SIZES = {"shakespeare-char": {},
         "larger": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256,
                    "batch_size": 8}}


def profile_steps(steps: int, *, warmup: int = 5, size: str = "shakespeare-char",
                  ) -> tuple[float, list[tuple[str, float, int]]]:
    """(seconds per plain step, [(function, seconds per step, calls per step)], most first)."""

    from phase_01_nn.corpus import load_corpus
    from phase_01_nn.vocabulary import CharVocabulary, train_val_split
    from phase_05_transformer_numpy.training import GPTTraining

    text = load_corpus("tinyshakespeare")
    vocab = CharVocabulary.from_text(text)
    train_ids, _ = train_val_split(vocab.encode(text))
    run = GPTTraining(TrainConfig(**SIZES[size]), train_ids, vocab)
    for _ in range(warmup):
        run.train_step()
    tick = time.perf_counter()
    for _ in range(steps):
        run.train_step()
    plain = (time.perf_counter() - tick) / steps
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        run.train_step()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = [(f"{os.path.basename(file)}:{name}", tottime / steps, calls // steps)
            for (file, _, name), (_, calls, tottime, _, _) in stats.items()]
    return plain, sorted(rows, key=lambda r: -r[1])


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_05_transformer_numpy.step_profile",
                                     description=plain_help(__doc__))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--preset", choices=sorted(SIZES), default="shakespeare-char")
    args = parser.parse_args(argv)
    for variable in VARIABLES:  # before NumPy loads, in profile_steps
        os.environ[variable] = str(args.threads)
    plain, rows = profile_steps(args.steps, size=args.preset)
    profiled = sum(r[1] for r in rows)
    config = TrainConfig(**SIZES[args.preset])  # presets.py loads no NumPy
    tokens = config.batch_size * config.block_size
    print(f"step without the profiler: {plain * 1000:.1f} ms ({tokens / plain:,.0f} tokens/s); "
          f"with it: {profiled * 1000:.1f} ms")
    print(f"{'function (file:name)':<58}{'ms/step':>9}{'share':>8}{'calls':>7}")
    for name, seconds, calls in rows[:args.top]:
        print(f"{name:<58}{seconds * 1000:>9.2f}{seconds / profiled:>8.1%}{calls:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
