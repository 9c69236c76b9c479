"""``python -m phase_06_torch_parity``: the parity report.

Every registered op over several seeds, in float64 and float32, then the optimizers, the schedule
and clipping, then phase 5's whole GPT against its torch twin (one step both ways, 20 AdamW
steps). Prints one row per check (largest error over the seeds) and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from phase_01_nn.command_line import UserError, plain_help, run_command
from phase_06_torch_parity.coverage import missing_cases
from phase_06_torch_parity.harness import run_case
from phase_06_torch_parity.model_parity import (
    MODEL_TOL,
    VARIANTS,
    one_step_parity,
    tiny_config,
    training_parity,
)
from phase_06_torch_parity.optimizer_parity import (
    OPTIMIZERS,
    clipping_parity,
    optimizer_parity,
    schedule_parity,
)
from phase_06_torch_parity.registry import CASES

OPTIMIZER_TOL = 1e-12


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_06_torch_parity",
                                     description=plain_help(__doc__))
    parser.add_argument("--seeds", type=int, default=10, help="seeds per case (default 10)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")

    failures = 0
    header = f"{'op':52s} {'dtype':8s} {'forward':>9s}  {'worst gradient':>22s} {'tol':>7s}  result"
    print(header)
    print("-" * len(header))
    for case in CASES:
        for dtype in (np.float64, np.float32):
            results = [run_case(case, seed, dtype) for seed in range(args.seeds)]
            forward = max(r.forward_error for r in results)
            per_arg: dict[str, float] = {}
            for r in results:
                for name, err in r.grad_errors.items():
                    per_arg[name] = max(per_arg.get(name, 0.0), err)
            arg, worst = max(per_arg.items(), key=lambda kv: kv[1]) if per_arg else ("-", 0.0)
            ok = all(r.passed for r in results)
            failures += not ok
            print(f"{case.name:52s} {np.dtype(dtype).name:8s} {forward:9.1e}  "
                  f"{arg + ' ' + format(worst, '.1e'):>22s} {results[0].tol:7.0e}  "
                  f"{'pass' if ok else 'FAIL'}")
    print()
    for name in OPTIMIZERS:
        worst = optimizer_parity(name)
        ok = worst <= OPTIMIZER_TOL
        failures += not ok
        print(f"{'optimizer: ' + name + ' (20 steps)':52s} float64 {worst:9.1e}  "
              f"{'':>22s} {OPTIMIZER_TOL:7.0e}  {'pass' if ok else 'FAIL'}")
    for label, worst in [("schedule vs CosineAnnealingLR", schedule_parity()),
                         ("clip_grad_norm (clipping)", clipping_parity(1.0)),
                         ("clip_grad_norm (no clipping)", clipping_parity(1e3))]:
        ok = worst <= OPTIMIZER_TOL
        failures += not ok
        print(f"{label:52s} float64 {worst:9.1e}  {'':>22s} {OPTIMIZER_TOL:7.0e}  "
              f"{'pass' if ok else 'FAIL'}")
    print()
    for variant, switches in VARIANTS.items():
        config = tiny_config(**switches)
        checks = [(f"GPT step, NumPy->torch: {variant}", one_step_parity(config).worst),
                  (f"GPT step, torch->NumPy: {variant}",
                   one_step_parity(config, from_torch=True).worst)]
        ours, theirs, weights = training_parity(config)
        curve = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True))
        checks.append((f"GPT 20 AdamW steps: {variant}", max(curve, weights)))
        for label, worst in checks:
            ok = worst <= MODEL_TOL
            failures += not ok
            print(f"{label[:52]:52s} float64 {worst:9.1e}  {'':>22s} {MODEL_TOL:7.0e}  "
                  f"{'pass' if ok else 'FAIL'}")
    missing = missing_cases(CASES)
    if missing:
        failures += len(missing)
        print(f"\nops with no parity case: {', '.join(missing)}")
    print(f"\n{'all checks passed' if not failures else f'{failures} checks FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
