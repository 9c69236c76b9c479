"""``python -m phase_07_gpt.sample --out RUN_DIR [--prompt TEXT] [--seed N] ...``

Text from a trained run (its ``ckpt.pt`` and tokenizer) or, with ``--pretrained DIR_OR_NAME``,
from GPT-2's weights with GPT-2's tokenizer. Options: temperature (0 = greedy), top-k, top-p,
the number of new tokens, an end token to stop at, a seed.
Notes: ``phase_07_gpt/notes/02_generation.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from phase_01_nn.command_line import plain_help, run_command
from phase_01_nn.sampling_options import add_sampling_options, check_sampling_options
from phase_07_gpt.checkpoint import CHECKPOINT_FILE, load_checkpoint
from phase_07_gpt.dataset import gpt2_tokenizer, load_tokenizer
from phase_07_gpt.device import pick_device
from phase_07_gpt.generate import generate
from phase_07_gpt.model import GPT
from phase_07_gpt.presets import TrainConfig


def load_run(run_dir: str | Path, device: torch.device | None = None):
    """(model in eval mode, tokenizer) from a training run's directory (on the CPU by default)."""
    run_dir = Path(run_dir)
    device = device or torch.device("cpu")
    state = load_checkpoint(run_dir / CHECKPOINT_FILE, map_location=device)
    config = TrainConfig.from_dict(state["config"])
    model = GPT(config.model_config(state["vocab_size"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ValueError(f"the weights in {run_dir / CHECKPOINT_FILE} do not fit the config "
                         f"saved with them: {error}") from None
    return model.to(device).eval(), load_tokenizer(config.tokenizer, run_dir)


def sample_text(model: GPT, tokenizer, prompt: str, *, max_new_tokens: int = 200,
                temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                stop: str | None = None, seed: int = 0, num_samples: int = 1) -> list[str]:
    """``num_samples`` continuations of ``prompt``, each decoded to text."""
    prompt_ids = tokenizer.encode(prompt)
    if not prompt_ids:
        raise ValueError("the prompt is empty; give at least one token of text")
    stop_token = None
    if stop is not None:
        specials = getattr(tokenizer, "special_tokens", {})
        stop_ids = [specials[stop]] if stop in specials else tokenizer.encode(stop)
        if len(stop_ids) != 1:
            raise ValueError(f"the stop text {stop!r} is {len(stop_ids)} tokens; it must be one")
        stop_token = stop_ids[0]
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids] * num_samples, dtype=torch.long, device=device)
    out = generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, stop_token=stop_token, seed=seed)
    return [tokenizer.decode(row.tolist()) for row in out]


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_07_gpt.sample",
                                     description=plain_help(__doc__))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--out", type=Path, help="a training run's directory")
    source.add_argument("--pretrained", help="a Hugging Face GPT-2 directory or hub name")
    add_sampling_options(parser, max_new_tokens=300)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--stop", default=None, help="stop at this one-token text, e.g. "
                        "'<|endoftext|>' for GPT-2")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    check_sampling_options(args)
    device = pick_device(args.device)
    if args.out is not None:
        model, tokenizer = load_run(args.out, device)
    else:
        model, tokenizer = GPT.from_pretrained(args.pretrained).to(device).eval(), \
            gpt2_tokenizer()
    samples = sample_text(model, tokenizer, args.prompt, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          stop=args.stop, seed=args.seed, num_samples=args.num_samples)
    print("\n----------\n".join(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
