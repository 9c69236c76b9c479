"""Memory and time of FlashAttention's tiles against naive attention, T = 256 .. 8192.

    python -m phase_09_modern.ops.flash_bench [--max-t 8192] [--d 64] [--block 128]

For each length T, one head (B = H = 1), float32, no mask: the peak of the memory allocated
during a forward and a backward pass, above what the inputs already hold, measured with
``tracemalloc`` (NumPy reports its array buffers to it), and the time of the two passes. Naive
attention is phase 4's ``scaled_dot_product_attention_forward/backward`` (it keeps the (T, T)
probabilities); the tiled one is ``flash_attention_forward/backward`` with the NumPy tiles, and
the numba tiles are timed up to T = 2048 (they are plain loops, no BLAS). Prints a table and writes
``flash_bench.json`` and ``flash_bench.png`` to ``runs/phase_09/flash_bench``.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from phase_04_attention.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from phase_09_modern.ops.flash_attention import flash_attention_backward, flash_attention_forward

OUT_DIR = Path("runs/phase_09/flash_bench")
NUMBA_MAX_T = 2048


def _naive(q, k, v, dy):
    y, cache = scaled_dot_product_attention_forward(q, k, v)
    return y, scaled_dot_product_attention_backward(dy, cache)


def _tiled(block, kernel):
    def run(q, k, v, dy):
        y, cache = flash_attention_forward(q, k, v, block_q=block, block_k=block, kernel=kernel)
        return y, flash_attention_backward(dy, cache)
    return run


def peak_extra_bytes(run, *arrays) -> int:
    """The highest allocation above the starting point while ``run(*arrays)`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    run(*arrays)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - start


def seconds(run, *arrays) -> float:
    begin = time.perf_counter()
    run(*arrays)
    return time.perf_counter() - begin


def measure(lengths, d: int, block: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    numba_run = _tiled(block, "numba")
    small = [rng.standard_normal((1, 8, d)).astype(np.float32) for _ in range(4)]
    numba_run(*small)  # compile (or load from cache) before timing
    rows = []
    for t in lengths:
        q, k, v, dy = (rng.standard_normal((1, t, d)).astype(np.float32) for _ in range(4))
        y_naive, _ = _naive(q, k, v, dy)
        y_tiled, _ = _tiled(block, "numpy")(q, k, v, dy)
        row = {
            "T": t,
            "naive_peak_mib": peak_extra_bytes(_naive, q, k, v, dy) / 2**20,
            "tiled_peak_mib": peak_extra_bytes(_tiled(block, "numpy"), q, k, v, dy) / 2**20,
            "naive_s": seconds(_naive, q, k, v, dy),
            "tiled_s": seconds(_tiled(block, "numpy"), q, k, v, dy),
            "numba_s": seconds(numba_run, q, k, v, dy) if t <= NUMBA_MAX_T else None,
            "max_abs_difference": float(np.max(np.abs(y_tiled - y_naive))),
        }
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


HEADER = (f"{'T':>6} {'naive MiB':>10} {'tiled MiB':>10} {'ratio':>7} {'naive s':>8} "
          f"{'tiled s':>8} {'numba s':>8} {'max |dy|':>9}")


def _format_row(row: dict) -> str:
    numba = "-" if row["numba_s"] is None else f"{row['numba_s']:.3f}"
    ratio = row["naive_peak_mib"] / row["tiled_peak_mib"]
    return (f"{row['T']:>6} {row['naive_peak_mib']:>10.1f} {row['tiled_peak_mib']:>10.2f} "
            f"{ratio:>7.1f} {row['naive_s']:>8.3f} {row['tiled_s']:>8.3f} {numba:>8} "
            f"{row['max_abs_difference']:>9.1e}")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["T"] for r in rows]
    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(10, 4))
    ax_mem.loglog(t, [r["naive_peak_mib"] for r in rows], "o-", label="naive (keeps P)")
    ax_mem.loglog(t, [r["tiled_peak_mib"] for r in rows], "s-", label="tiled (keeps LSE)")
    ax_mem.set(xlabel="T", ylabel="peak extra memory, MiB", title="forward + backward memory")
    ax_time.loglog(t, [r["naive_s"] for r in rows], "o-", label="naive")
    ax_time.loglog(t, [r["tiled_s"] for r in rows], "s-", label="tiled, NumPy")
    numba = [(r["T"], r["numba_s"]) for r in rows if r["numba_s"] is not None]
    if numba:
        ax_time.loglog(*zip(*numba, strict=True), "^-", label="tiled, numba")
    ax_time.set(xlabel="T", ylabel="seconds", title="forward + backward time")
    for ax in (ax_mem, ax_time):
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-t", type=int, default=8192)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    lengths = [t for t in (256, 512, 1024, 2048, 4096, 8192) if t <= args.max_t]
    print(f"one head, D={args.d}, float32, blocks {args.block}x{args.block}, no mask; "
          f"forward + backward")
    print(HEADER)
    rows = measure(lengths, args.d, args.block)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flash_bench.json").write_text(json.dumps(
        {"d": args.d, "block": args.block, "dtype": "float32", "rows": rows}, indent=2))
    plot(rows, args.out / "flash_bench.png")
    print(f"wrote {args.out / 'flash_bench.json'} and {args.out / 'flash_bench.png'}")
    return rows


if __name__ == "__main__":
    main()
