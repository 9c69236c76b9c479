"""``python -m phase_09_modern.models.llama_train [--preset NAME] [--n-kv-head K] [--d-ff F]
[--with-gpt] [--threads N] [--out DIR] [phase 7 options ...]``

Trains the LLaMA-style model (``llama.py``) with phase 7's trainer: the same data, batches,
optimiser, schedule, evaluation and checkpoints as ``python -m phase_07_gpt.train``, only the
model differs (``train(..., model_factory=...)``). The preset's ``block_size``, ``n_layer``,
``n_head``, ``n_embd``, ``dropout``, ``bias`` and ``tie_weights`` carry over; ``positions``
and ``gelu`` do not apply (RoPE, SwiGLU). ``--d-ff`` sets SwiGLU's width; the default is
LLaMA's rule, 2/3 of GPT's 4 n_embd rounded up to a multiple of 8 (``swiglu_width``), which keeps
the MLP's parameters equal to GPT's: at the shakespeare-char preset's size d_ff = 344 and the
model has 800 000 parameters, against 803 968 counted by phase 7's GPT.

``--with-gpt`` then trains phase 7's GPT with the same config in the same process, and prints
and writes (``comparison.json``) the two runs side by side.
Notes: ``phase_09_modern/notes/14_llama_vs_gpt.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from phase_01_nn.command_line import plain_help, run_command
from phase_01_nn.config_options import config_from_args, preset_parser
from phase_07_gpt.presets import PRESETS, TrainConfig
from phase_07_gpt.train import train
from phase_09_modern.models.llama import Llama, LlamaConfig


def swiglu_width(n_embd: int, multiple_of: int = 8) -> int:
    """2/3 of 4 n_embd, rounded up to ``multiple_of``: SwiGLU's three matrices then hold about
    the 8 n_embd^2 weights of GPT's two (Touvron et al. 2023, from Shazeer 2020)."""
    return -(-(8 * n_embd // 3) // multiple_of) * multiple_of


def llama_config(config: TrainConfig, vocab_size: int, n_kv_head: int | None,
                 d_ff: int | None) -> LlamaConfig:
    """The LLaMA that stands in for ``config``'s GPT (``n_kv_head`` None: one per head;
    ``d_ff`` None: ``swiglu_width``)."""
    if not config.pre_ln:
        raise ValueError("the LLaMA-style model is pre-norm only; drop --no-pre-ln")
    return LlamaConfig(vocab_size=vocab_size, block_size=config.block_size,
                       n_layer=config.n_layer, n_head=config.n_head,
                       n_kv_head=n_kv_head or config.n_head, n_embd=config.n_embd,
                       d_ff=d_ff or swiglu_width(config.n_embd),
                       tie_weights=config.tie_weights, bias=config.bias, mlp_bias=config.bias,
                       dropout=config.dropout, init=config.init)


def train_llama(config: TrainConfig, out: Path, *, n_kv_head: int | None = None,
                d_ff: int | None = None, quiet: bool = False, preset: str | None = None) -> dict:
    """Phase 7's ``train`` with a LLaMA; also writes ``llama_config.json``."""
    llama_config(config, 1, n_kv_head, d_ff)  # a bad combination fails before any data is read
    built: list[LlamaConfig] = []

    def factory(vocab_size: int) -> Llama:
        built.append(llama_config(config, vocab_size, n_kv_head, d_ff))
        return Llama(built[-1])

    summary = train(config, out, quiet=quiet, preset=preset, model_factory=factory)
    (Path(out) / "llama_config.json").write_text(json.dumps(built[-1].to_dict(), indent=2)
                                                 + "\n", encoding="utf-8")
    return summary


def comparison_table(runs: dict[str, dict]) -> str:
    lines = ["| model | parameters | val loss | train loss | training time | tokens/s |",
             "|---|---|---|---|---|---|"]
    for name, s in runs.items():
        lines.append(f"| {name} | {s['params']:,} | {s['final_val_loss']:.4f} | "
                     f"{s['final_train_loss']:.4f} | {s['train_seconds']} s | "
                     f"{s['tokens_per_second']:,.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None):
    parser = preset_parser(argv, prog="python -m phase_09_modern.models.llama_train",
                           description=plain_help(__doc__.split("\n\n")[1]),
                           config_class=TrainConfig,
                           presets=PRESETS, default="shakespeare-char",
                           run_root="runs/phase_09/llama", resume=False)
    parser.add_argument("--n-kv-head", type=int, default=None,
                        help="key/value heads (default: n_head, multi-head attention)")
    parser.add_argument("--d-ff", type=int, default=None,
                        help="SwiGLU hidden width (default: 8 n_embd / 3 rounded up to 8)")
    parser.add_argument("--with-gpt", action="store_true",
                        help="also train phase 7's GPT with the same config and compare")
    args = parser.parse_args(argv)
    return config_from_args(args, TrainConfig), args


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    config, args = parse_args(argv)
    out = args.out or Path("runs/phase_09/llama") / args.preset
    runs = {"LLaMA": train_llama(config, out / "llama" if args.with_gpt else out,
                                 n_kv_head=args.n_kv_head, d_ff=args.d_ff,
                                 preset=args.preset)}
    if args.with_gpt:
        runs["GPT (phase 7)"] = train(config, out / "gpt", preset=args.preset)
    print(comparison_table(runs))
    if args.with_gpt:
        (out / "comparison.json").write_text(json.dumps(
            {"preset": args.preset, "config": config.to_dict(), "n_kv_head": args.n_kv_head,
             "d_ff": args.d_ff, "runs": runs}, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}/comparison.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
