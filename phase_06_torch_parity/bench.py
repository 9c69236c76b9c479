"""``python -m phase_06_torch_parity.bench``: the NumPy GPT against its torch twin, step for step.

The same model (weights copied across), the same batches, float32, the same number of threads,
one full training step each: forward, backward, global-norm clipping and AdamW. Each
(implementation, preset, threads) runs in its own process, so that its peak memory is its own
and the thread settings take effect before NumPy or torch loads its BLAS. The two sides are
interleaved: ``--rounds`` rounds, each running NumPy then torch (torch first in every other
round), so that a machine shared with other jobs slows both alike. Prints a table with the
medians over the rounds of milliseconds per step (each the median of its timed steps), tokens
per second, the peak memory the steps added (over the process's size once the model is built and
its libraries have started up: one step of a tiny model runs first), and NumPy / torch (the
median of the rounds' ratios). Under the table: the CPU, NumPy's BLAS and the kernel set it
runs, torch's BLAS, and a warning where either is held off its fastest code for this processor
(a ratio holds for one pair of libraries on one processor). Results:
``phase_06_torch_parity/notes/03_speed.md``.

How each side uses N threads: torch as it comes, N intra-op threads that split each op. NumPy,
by default (``--numpy-parallel workers``), as N data-parallel workers, each taking B/N of the
batch with one BLAS thread (``phase_05_transformer_numpy/data_parallel.py``); with
``--numpy-parallel blas``, one worker and an N-thread BLAS, which splits the matrix products only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from phase_01_nn.command_line import plain_help, run_command

PRESETS: dict[str, dict] = {
    "shakespeare-char": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64,
                         "batch_size": 12},
    "larger": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "batch_size": 8},
}
VOCAB_SIZE = 65  # Tiny Shakespeare's characters
IMPLEMENTATIONS = ("numpy", "torch")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _status_mib(field: str) -> float:
    """A size from /proc/self/status in MiB: ``VmRSS`` (resident now) or ``VmHWM`` (the peak
    since the process started, or since ``_reset_peak_rss``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs sets the peak (VmHWM) back to the present size, so that
    start-up's transient memory does not count as the steps' peak."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


# A model far too small to hold memory: one step of it before the baseline is read starts each
# library's one-time machinery (numba loading its compiled kernels, about 45 MiB here; torch's
# own lazy set-up), so that "peak MiB added" counts what the steps hold, not what start-up loads.
START_UP = {"n_layer": 1, "n_head": 1, "n_embd": 8, "block_size": 4, "batch_size": 2}


def _training_step(implementation: str, p: dict, workers: int = 1):
    """(step(ids, targets) -> loss, batches): one full training step of the NumPy GPT (its
    batch split across ``workers`` threads) or of its torch twin (the same weights) for the sizes
    in ``p``, and four batches of random ids."""
    import numpy as np
    import torch

    from phase_01_nn.clipping import clip_grad_norm
    from phase_01_nn.optimizers import AdamW
    from phase_05_transformer_numpy.data_parallel import DataParallel
    from phase_05_transformer_numpy.gpt import GPT, GPTConfig
    from phase_06_torch_parity.gpt_twin import twin_of

    config = GPTConfig(vocab_size=VOCAB_SIZE, block_size=p["block_size"], n_layer=p["n_layer"],
                       n_head=p["n_head"], n_embd=p["n_embd"])
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng, dtype=np.float32)
    batches = [(rng.integers(0, VOCAB_SIZE, (p["batch_size"], p["block_size"])),
                rng.integers(0, VOCAB_SIZE, (p["batch_size"], p["block_size"])))
               for _ in range(4)]
    hyper = {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.1}

    if implementation == "numpy":
        params = model.parameters()
        optimizer = AdamW(params, no_decay=[n for n, v in params.items() if v.ndim < 2], **hyper)
        parallel = DataParallel(model, workers)

        def step(ids, targets) -> float:
            loss = parallel.loss_and_gradients(ids, targets)  # zero_grad, forward, backward
            clip_grad_norm(model.gradients(), 1.0)
            optimizer.step(model.gradients())
            return loss

        return step, batches
    twin = twin_of(model, torch.float32)
    model = None  # the twin holds its own copy of the weights
    decay = [q for q in twin.parameters() if q.ndim >= 2]
    other = [q for q in twin.parameters() if q.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay}, {"params": other, "weight_decay": 0.0}], **hyper)

    def step(ids, targets) -> float:
        optimizer.zero_grad(set_to_none=True)
        _, loss = twin(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    return step, [tuple(torch.from_numpy(a) for a in batch) for batch in batches]


def worker(implementation: str, preset: str, steps: int, warmup: int, threads: int,
           workers: int = 1) -> dict:
    """Start the libraries up on a tiny model, build the preset's model, run ``warmup`` untimed
    and ``steps`` timed training steps, report."""
    import gc
    import time

    import numpy as np
    import torch

    from phase_01_nn.allocator import keep_freed_memory

    keep_freed_memory()  # both sides alike; the NumPy step loses a quarter without it
    torch.set_num_threads(threads)
    start_up, tiny = _training_step(implementation, START_UP)
    start_up(*tiny[0])
    del start_up, tiny
    gc.collect()
    p = PRESETS[preset]
    step, batches = _training_step(implementation, p, workers)
    _reset_peak_rss()
    before = _status_mib("VmRSS")
    for i in range(warmup):
        step(*batches[i % len(batches)])
    times, losses = [], []
    for i in range(steps):
        start = time.perf_counter()
        losses.append(step(*batches[i % len(batches)]))
        times.append(time.perf_counter() - start)
    ms = 1000 * float(np.median(times))
    return {"implementation": implementation, "preset": preset, "threads": threads,
            "ms_per_step": ms, "tokens_per_s": p["batch_size"] * p["block_size"] / ms * 1000,
            "peak_step_mib": _status_mib("VmHWM") - before, "first_loss": losses[0],
            "last_loss": losses[-1], "steps": steps, "workers": workers}


def run_worker(implementation: str, preset: str, steps: int, warmup: int, threads: int,
               numpy_parallel: str = "workers") -> dict:
    """One worker process; with ``numpy_parallel="workers"``, the NumPy side's ``threads`` are
    data-parallel workers of one BLAS thread each (at most one worker a sequence of the batch;
    threads beyond that go to each worker's BLAS)."""
    workers = 1
    if implementation == "numpy" and numpy_parallel == "workers":
        workers = min(threads, PRESETS[preset]["batch_size"])
    env = dict(os.environ, **{name: str(threads // workers) for name in THREAD_VARIABLES})
    command = [sys.executable, "-m", "phase_06_torch_parity.bench", "--worker", implementation,
               "--preset", preset, "--steps", str(steps), "--warmup", str(warmup),
               "--threads", str(threads), "--workers", str(workers)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {implementation} worker for {preset} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved(presets: list[str], threads: list[int], rounds: int, steps: int,
                warmup: int, numpy_parallel: str = "workers") -> list[dict]:
    """Every (preset, threads) pair timed ``rounds`` times, NumPy and torch back to back (the
    order swapped each round), summarised as one row per (preset, threads, implementation)."""
    rows = []
    for preset in presets:
        for n in threads:
            runs: dict[str, list[dict]] = {name: [] for name in IMPLEMENTATIONS}
            for r in range(rounds):
                for implementation in IMPLEMENTATIONS[::1 if r % 2 == 0 else -1]:
                    result = run_worker(implementation, preset, steps, warmup, n,
                                        numpy_parallel)
                    runs[implementation].append(result)
                    print(f"round {r + 1}/{rounds}: {implementation} on {preset}, {n} thread(s): "
                          f"{result['ms_per_step']:.1f} ms/step", file=sys.stderr, flush=True)
            ratios = [a["ms_per_step"] / b["ms_per_step"]
                      for a, b in zip(runs["numpy"], runs["torch"], strict=True)]
            for implementation, results in runs.items():
                ms = statistics.median(r["ms_per_step"] for r in results)
                rows.append({**results[0], "ms_per_step": ms,
                             "tokens_per_s": results[0]["tokens_per_s"]
                             * results[0]["ms_per_step"] / ms,
                             "peak_step_mib": statistics.median(r["peak_step_mib"]
                                                                for r in results),
                             "rounds": [r["ms_per_step"] for r in results],
                             "ratio": statistics.median(ratios)
                             if implementation == "numpy" else None})
    return rows


def _cpu() -> dict:
    """The processor's model name and vendor, from /proc/cpuinfo (Linux) or ``platform``."""
    import platform

    found = {"model": platform.processor() or platform.machine(), "vendor": "unknown"}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    found["model"] = value.strip()
                elif key.strip() == "vendor_id":
                    found["vendor"] = value.strip()
                elif not line.strip():
                    break  # the end of the first processor's block
    except OSError:
        pass
    found["cores"] = os.cpu_count() or 1
    return found


def numpy_blas() -> dict:
    """NumPy's BLAS as threadpoolctl finds it loaded in this process: its name (``openblas``,
    ``mkl``, ...), version, and for OpenBLAS the kernel set it chose for this processor
    (``Haswell``, ``SkylakeX``, ...) or that ``OPENBLAS_CORETYPE`` forced on it."""
    import numpy as np
    from threadpoolctl import threadpool_info

    package = Path(np.__file__).resolve().parent  # wheels keep the library in numpy.libs beside it
    own = (str(package), str(package.with_name("numpy.libs")))
    found = [i for i in threadpool_info() if i["user_api"] == "blas"]
    mine = [i for i in found if str(Path(i["filepath"]).resolve()).startswith(own)] or found
    if not mine:
        return {"blas": "unknown", "blas_version": None, "kernel": None}
    return {"blas": mine[0]["internal_api"], "blas_version": mine[0].get("version"),
            "kernel": mine[0].get("architecture")}


def torch_blas() -> dict:
    """The BLAS torch was built with (``BLAS_INFO``; MKL's version if it is MKL) and the vector
    instruction set its own kernels dispatch to (``AVX512``, ``AVX2``, ...)."""
    import re

    import torch

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
    return {"blas": blas.group(1) if blas else "unknown",
            "blas_version": mkl.group(1) if mkl else None,
            "capability": torch.backends.cpu.get_cpu_capability()}


FORCING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # the workplace's shell sets both


def libraries() -> dict:
    """What the two sides compute with: the CPU, NumPy's BLAS, torch's BLAS, and (when
    ``OPENBLAS_CORETYPE`` is set) the kernel set NumPy's OpenBLAS would choose without it."""
    import numpy as np
    import torch

    found = {"cpu": _cpu(), "numpy": {"version": np.__version__, **numpy_blas()},
             "torch": {"version": torch.__version__, **torch_blas()},
             "numpy_kernel_unforced": None}
    if os.environ.get("OPENBLAS_CORETYPE") and found["numpy"]["blas"] == "openblas":
        env = {k: v for k, v in os.environ.items() if k not in FORCING_VARIABLES}
        probe = [sys.executable, "-c", "import json; from phase_06_torch_parity.bench import "
                 "numpy_blas; print(json.dumps(numpy_blas()))"]
        done = subprocess.run(probe, env=env, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            found["numpy_kernel_unforced"] = json.loads(done.stdout.splitlines()[-1])["kernel"]
    return found


def describe(found: dict, env: dict | None = None) -> list[str]:
    """Lines for under the table: the CPU and both sides' BLAS, then a warning where either
    library is not running the code it would choose for this processor."""
    env = os.environ if env is None else env
    cpu, mine, theirs = found["cpu"], found["numpy"], found["torch"]
    numpy_blas_name = " ".join(filter(None, (mine["blas"], mine["blas_version"])))
    torch_blas_name = " ".join(filter(None, (theirs["blas"], theirs["blas_version"])))
    kernel = f", {mine['kernel']} kernels" if mine.get("kernel") else ""
    lines = [f"CPU: {cpu['model']} ({cpu['vendor']}, {cpu['cores']} cores)",
             f"NumPy {mine['version']}: {numpy_blas_name}{kernel}",
             f"torch {theirs['version']}: {torch_blas_name}, its own kernels: "
             f"{theirs['capability']}"]
    forced = env.get("OPENBLAS_CORETYPE")
    unforced = found.get("numpy_kernel_unforced")
    if forced and mine["blas"] == "openblas" and unforced and unforced != mine.get("kernel"):
        lines.append(
            f"note: OPENBLAS_CORETYPE={forced} is set, so NumPy's OpenBLAS runs its "
            f"{mine.get('kernel')} kernels, not the {unforced} ones it would choose here: the "
            f"NumPy side is slower than it need be. To time it as it comes: env -u "
            f"OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m phase_06_torch_parity.bench")
    if theirs["blas"] == "mkl" and cpu["vendor"] not in ("GenuineIntel", "unknown"):
        lines.append(
            f"note: torch's BLAS is MKL on this {cpu['vendor']} processor, where MKL takes a "
            f"slower code path than on an Intel one: the torch side's matrix products are "
            f"slower than this CPU allows (phase_06_torch_parity/notes/03_speed.md, 'Which "
            f"BLAS runs')")
    return lines


# Issue 25's goals: NumPy's step time over torch's at most this, at every thread count, and a
# step that adds no more peak memory than torch's.
GOALS = {"shakespeare-char": 0.8, "larger": 1.0}


def verdict(row: dict, torch_row: dict | None) -> str:
    """The goal column of a NumPy row: each goal, and whether this run met it."""
    parts = []
    goal = GOALS.get(row["preset"])
    if goal is not None and row.get("ratio") is not None:
        parts.append(f"time <= {goal:.1f}x: {'met' if row['ratio'] <= goal else 'missed'}")
    if torch_row is not None:
        met = row["peak_step_mib"] <= torch_row["peak_step_mib"]
        parts.append(f"memory <= torch's: {'met' if met else 'missed'}")
    return "; ".join(parts)


def table(results: list[dict]) -> str:
    lines = ["| preset | implementation | threads | ms / step | tokens / s | peak MiB added "
             "| NumPy / torch | goal |", "|---|---|---|---:|---:|---:|---:|---|"]
    torch_rows = {(r["preset"], r["threads"]): r for r in results
                  if r["implementation"] == "torch"}
    for r in results:
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        threads = f"{r['threads']} ({r['workers']} workers)" if r.get("workers", 1) > 1 \
            else str(r["threads"])
        goal = verdict(r, torch_rows.get((r["preset"], r["threads"]))) \
            if r["implementation"] == "numpy" else ""
        lines.append(f"| {r['preset']} | {r['implementation']} | {threads} | "
                     f"{r['ms_per_step']:.1f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['peak_step_mib']:.0f} | {ratio} | {goal} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_06_torch_parity.bench",
                                     description=plain_help(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=[*PRESETS, "all"], default="all")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, os.cpu_count() or 1}),
                        help="BLAS / torch thread counts, each timed for both (default: 1 and "
                             "all cores)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="NumPy / torch pairs per case, interleaved (medians reported)")
    parser.add_argument("--out", type=Path, default=Path("runs/phase_06/bench"),
                        help="where the table (Markdown) and results (JSON) go")
    parser.add_argument("--numpy-parallel", choices=("workers", "blas"), default="workers",
                        help="how NumPy uses N threads: N data-parallel workers with one BLAS "
                             "thread each (default), or one worker with an N-thread BLAS")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or min(args.threads) < 1 or args.rounds < 1:
        parser.error("--steps, --threads and --rounds must be >= 1, --warmup >= 0")
    if args.worker:
        print(json.dumps(worker(args.worker, args.preset, args.steps, args.warmup,
                                args.threads[0], args.workers)))
        return 0

    found = libraries()
    about = "\n".join(describe(found))
    print(about, file=sys.stderr, flush=True)
    presets = list(PRESETS) if args.preset == "all" else [args.preset]
    results = interleaved(presets, args.threads, args.rounds, args.steps, args.warmup,
                          args.numpy_parallel)
    text = table(results) + "\n\n" + about
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text(text + "\n")
    (args.out / "bench.json").write_text(json.dumps({"libraries": found, "results": results},
                                                    indent=2) + "\n")
    print(f"\nwritten to {args.out}/bench.md and bench.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
