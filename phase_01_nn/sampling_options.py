"""The sampling options of every ``sample`` command, with the same names, meanings and checks in
each phase: ``--prompt``, ``--max-new-tokens``, ``--temperature`` (0 = always the most likely
token), ``--top-k``, ``--num-samples`` and ``--seed``. A value that makes no sampling sense is an
error naming it before a model is loaded."""

from __future__ import annotations

import argparse
import math

from phase_01_nn.command_line import UserError


def add_sampling_options(parser: argparse.ArgumentParser, *, max_new_tokens: int,
                         top_k: int | None = None, temperature: float = 0.8,
                         length_alias: bool = False) -> None:
    """The shared options; ``length_alias`` also accepts ``--length`` for ``--max-new-tokens``
    (phase 5's earlier name)."""
    parser.add_argument("--prompt", default="\n", help="the text to continue (default a newline)")
    names = ["--max-new-tokens", "--length"] if length_alias else ["--max-new-tokens"]
    parser.add_argument(*names, dest="max_new_tokens", type=int, default=max_new_tokens,
                        help=f"tokens to draw after the prompt (default {max_new_tokens})")
    parser.add_argument("--temperature", type=float, default=temperature,
                        help=f"divides the logits; 0 = greedy (default {temperature})")
    parser.add_argument("--top-k", type=int, default=top_k,
                        help=f"draw only among the k most likely tokens (default {top_k})")
    parser.add_argument("--num-samples", type=int, default=1, help="continuations to draw")
    parser.add_argument("--seed", type=int, default=0)


def check_sampling_options(args: argparse.Namespace) -> None:
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UserError(f"--temperature must be a finite number >= 0 (0 = greedy), got "
                        f"{args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    top_p = getattr(args, "top_p", None)
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise UserError(f"--top-p must be in (0, 1], got {top_p}")
