"""``python -m phase_09_modern.models.kv_bench [--lengths 64 128 256 512] [--threads 1]
[--out DIR]``

Generation speed with and without the key-value cache, on one small LLaMA-style model (random
weights: speed does not depend on what was learnt). Without the cache every new token reruns
the whole sequence, so n new tokens cost about n^2 / 2 token-positions; with it each costs one
position that attends to the cache. The reference is transformers' ``LlamaForCausalLM.generate``
(with its cache) on the same weights, timed in the same run.

Prints the table, writes ``results.json`` and ``kv_bench.png`` to the output directory
(default ``runs/phase_09/kv_bench``). Notes: ``phase_09_modern/notes/11_kv_cache.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from phase_01_nn.command_line import UserError, plain_help, run_command
from phase_09_modern.models.llama import Llama, LlamaConfig
from phase_09_modern.models.llama_checkpoints import our_name

PROMPT = 16
MODEL = LlamaConfig(vocab_size=65, block_size=1024, n_layer=4, n_head=4, n_kv_head=4,
                    n_embd=128, d_ff=344)


def hf_twin(model: Llama):
    """The same weights in transformers' ``LlamaForCausalLM``, or None without transformers."""
    try:
        import transformers
    except ImportError:
        return None
    c = model.config
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.d_ff,
        num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
        num_key_value_heads=c.n_kv_head, max_position_embeddings=c.block_size,
        rms_norm_eps=c.norm_eps, tie_word_embeddings=False)).eval()
    ours = model.state_dict()
    hf.load_state_dict({name: ours[our_name(name)] for name in hf.state_dict()})
    return hf


def seconds(run, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (after one warm-up): the least disturbed by
    other work on a shared machine."""
    run()
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def bench(lengths: list[int], repeats: int) -> list[dict]:
    torch.manual_seed(0)
    model = Llama(MODEL).eval()
    hf = hf_twin(model)
    prompt = torch.randint(0, MODEL.vocab_size, (1, PROMPT),
                           generator=torch.Generator().manual_seed(1))
    rows = []
    for n in lengths:
        row = {"new_tokens": n}
        for label, use_cache in (("cache", True), ("no_cache", False)):
            t = seconds(lambda n=n, use_cache=use_cache: model.generate(
                prompt, n, temperature=0, use_cache=use_cache), repeats)
            row[f"{label}_tokens_per_s"] = n / t
        if hf is not None:
            with torch.no_grad():
                t = seconds(lambda n=n: hf.generate(prompt, max_new_tokens=n, min_new_tokens=n,
                                                    do_sample=False, pad_token_id=0), repeats)
            row["hf_cache_tokens_per_s"] = n / t
        row["speedup"] = row["cache_tokens_per_s"] / row["no_cache_tokens_per_s"]
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    has_hf = "hf_cache_tokens_per_s" in rows[0]
    head = "| new tokens | with cache (tok/s) | without cache (tok/s) | cache speed-up |"
    rule = "|---|---|---|---|"
    if has_hf:
        head += " transformers, cache (tok/s) | ours / transformers |"
        rule += "---|---|"
    lines = [head, rule]
    for r in rows:
        line = (f"| {r['new_tokens']} | {r['cache_tokens_per_s']:,.0f} | "
                f"{r['no_cache_tokens_per_s']:,.0f} | {r['speedup']:.1f}x |")
        if has_hf:
            line += (f" {r['hf_cache_tokens_per_s']:,.0f} | "
                     f"{r['cache_tokens_per_s'] / r['hf_cache_tokens_per_s']:.2f} |")
        lines.append(line)
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = [r["new_tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lengths, [r["cache_tokens_per_s"] for r in rows], "o-", label="with KV cache")
    ax.plot(lengths, [r["no_cache_tokens_per_s"] for r in rows], "o-", label="without cache")
    if "hf_cache_tokens_per_s" in rows[0]:
        ax.plot(lengths, [r["hf_cache_tokens_per_s"] for r in rows], "o--",
                label="transformers, cache")
    ax.set(xscale="log", yscale="log", xlabel="new tokens (prompt of 16)",
           ylabel="tokens / second", title="greedy generation, 0.8M-parameter LLaMA, 1 thread")
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_09_modern.models.kv_bench",
                                     description=plain_help(__doc__.split("\n\n")[1]))
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/phase_09/kv_bench"))
    args = parser.parse_args(argv)
    too_long = [n for n in args.lengths if not 1 <= n <= MODEL.block_size - PROMPT]
    if too_long:
        raise UserError(f"--lengths must be in [1, {MODEL.block_size - PROMPT}], got {too_long}")
    for name in ("threads", "repeats"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    rows = bench(sorted(args.lengths), args.repeats)
    print(table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({
        "model": MODEL.to_dict(), "params": Llama(MODEL).num_params(), "prompt": PROMPT,
        "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
        "rows": rows}, indent=2) + "\n", encoding="utf-8")
    plot(rows, args.out / "kv_bench.png")
    print(f"wrote {args.out}/results.json and kv_bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
