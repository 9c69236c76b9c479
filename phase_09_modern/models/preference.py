"""Direct preference optimisation (Rafailov et al. 2023) in PyTorch, and a demo that uses it.

For a prompt x with a preferred completion y_w and a rejected one y_l, the policy's implicit
reward is r(y) = beta (log pi(y|x) - log pi_ref(y|x)), and

    L = -log sigmoid(r(y_w) - r(y_l))

which is ln 2 while the policy equals the reference (both rewards 0). No reward model, no
sampling during training: the loss is a logistic regression on log-probability ratios.

``python -m phase_09_modern.models.preference [--preset tiny|full] [--base RUN_DIR] [--out DIR]`` is
the demo: a char GPT from phase 7 (pretrained here on Tiny Shakespeare, or loaded from a run
directory) samples two completions per prompt; the one with the larger share of vowels among
its letters is "preferred". DPO on those pairs should make the policy write more vowels; the
measure is the head-to-head win rate of the policy's samples against the reference's on
held-out prompts (0.5 = no change) and their mean vowel share.
Notes: ``phase_09_modern/notes/13_dpo.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from phase_01_nn.command_line import plain_help, run_command
from phase_07_gpt.dataset import TokenData, read_text
from phase_07_gpt.generate import generate
from phase_07_gpt.presets import preset as train_preset
from phase_07_gpt.sample import load_run
from phase_07_gpt.train import train
from phase_09_modern.models.lora import mean_loss

VOWELS = set("aeiouAEIOU")


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float = 0.1):
    """Each argument: (N,) summed log-probabilities of the completions. Returns the mean loss
    -log sigmoid(r_w - r_l) and the rewards r_w, r_l (N,) (detached)."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_reward - rejected_reward).mean()
    return loss, chosen_reward.detach(), rejected_reward.detach()


def completion_logprob(model: nn.Module, sequences: torch.Tensor, prompt_len: int
                       ) -> torch.Tensor:
    """sequences: (N, P + L) prompt then completion -> (N,) sum of log p(token | before) over
    the L completion tokens."""
    logits, _ = model(sequences[:, :-1])
    logp = logits.log_softmax(-1).gather(2, sequences[:, 1:, None])[..., 0]
    return logp[:, prompt_len - 1:].sum(dim=1)


def vowel_share(text: str) -> float:
    """The fraction of the letters in ``text`` that are vowels (0 when it has no letter)."""
    letters = [c for c in text if c.isalpha()]
    return sum(c in VOWELS for c in letters) / len(letters) if letters else 0.0


def sample_completions(model: nn.Module, prompts: torch.Tensor, length: int, seed: int
                       ) -> torch.Tensor:
    """(N, P) -> (N, P + length), temperature 1."""
    return generate(model, prompts, length, temperature=1.0, seed=seed)


def preference_pairs(model: nn.Module, tokenizer, prompts: torch.Tensor, length: int,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two samples per prompt; the one with the larger vowel share is chosen. Ties dropped."""
    p = prompts.size(1)
    a = sample_completions(model, prompts, length, seed)
    b = sample_completions(model, prompts, length, seed + 1)
    score_a = torch.tensor([vowel_share(tokenizer.decode(r[p:].tolist())) for r in a])
    score_b = torch.tensor([vowel_share(tokenizer.decode(r[p:].tolist())) for r in b])
    keep = score_a != score_b
    a_wins = (score_a > score_b)[:, None]
    chosen = torch.where(a_wins, a, b)[keep]
    rejected = torch.where(a_wins, b, a)[keep]
    return chosen, rejected


def head_to_head(policy: nn.Module, reference: nn.Module, tokenizer, prompts: torch.Tensor,
                 length: int, seed: int) -> dict:
    """Sample one completion per prompt from each model (different seeds); the policy wins a
    prompt when its vowel share is larger, a tie counts half."""
    p = prompts.size(1)
    mine = [vowel_share(tokenizer.decode(r[p:].tolist()))
            for r in sample_completions(policy, prompts, length, seed)]
    theirs = [vowel_share(tokenizer.decode(r[p:].tolist()))
              for r in sample_completions(reference, prompts, length, seed + 10_000)]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(mine, theirs,
                                                                          strict=True))
    return {"win_rate": wins / len(mine), "policy_vowel_share": sum(mine) / len(mine),
            "reference_vowel_share": sum(theirs) / len(theirs)}


@torch.no_grad()
def pair_metrics(policy: nn.Module, reference_logps: tuple[torch.Tensor, torch.Tensor],
                 chosen: torch.Tensor, rejected: torch.Tensor, prompt_len: int,
                 beta: float) -> dict:
    """Held-out DPO loss, and preference accuracy: the fraction of pairs whose chosen
    completion gets the larger implicit reward, a tie counting half (so 0.5 at the start,
    where every reward is 0)."""
    policy.eval()
    loss, r_w, r_l = dpo_loss(completion_logprob(policy, chosen, prompt_len),
                              completion_logprob(policy, rejected, prompt_len),
                              *reference_logps, beta=beta)
    return {"dpo_loss": loss.item(), "preference_accuracy":
            ((r_w > r_l).float() + 0.5 * (r_w == r_l).float()).mean().item()}


@dataclass(frozen=True)
class DemoConfig:
    pretrain_preset: str
    train_prompts: int
    eval_prompts: int
    prompt_len: int = 16
    completion_len: int = 32
    steps: int = 100
    batch_pairs: int = 32
    lr: float = 1e-4
    beta: float = 0.1
    lm_eval_batches: int = 50  # language-model loss on the corpus' validation split


DEMOS = {
    "tiny": DemoConfig(pretrain_preset="tiny", train_prompts=64, eval_prompts=32, prompt_len=8,
                       completion_len=16, steps=10, batch_pairs=16, lr=1e-3, lm_eval_batches=4),
    "full": DemoConfig(pretrain_preset="shakespeare-char", train_prompts=1024,
                       eval_prompts=512, steps=200),
}


def _prompts(tokens: torch.Tensor, n: int, length: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(tokens) - length, (n,), generator=generator)
    return tokens[starts[:, None] + torch.arange(length)]


def run_demo(name: str, out: Path, base: Path | None = None, threads: int = 1,
             data: str = "tinyshakespeare", seed: int = 0, quiet: bool = False,
             **overrides) -> dict:
    """The demo ``name``; ``overrides`` replace its ``DemoConfig`` fields (lr, beta, steps)."""
    demo = replace(DEMOS[name], **overrides)
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    if base is None:
        # GPT-2's initialisation, as when the notes' figures were measured
        config = train_preset(demo.pretrain_preset, data=data, threads=threads, device="cpu",
                              init="gpt2")
        train(config, out / "pretrain", quiet=quiet, preset=demo.pretrain_preset)
        base = out / "pretrain"
    reference, tokenizer = load_run(base)
    if demo.prompt_len + demo.completion_len > reference.config.block_size:
        raise ValueError(f"prompt {demo.prompt_len} + completion {demo.completion_len} tokens "
                         f"exceed the base model's block_size {reference.config.block_size}")
    reference.requires_grad_(False)
    policy = copy.deepcopy(reference).requires_grad_(True)
    tokens = TokenData.from_text(read_text(data), tokenizer, demo.prompt_len)
    p = demo.prompt_len
    began = time.perf_counter()
    chosen, rejected = preference_pairs(reference, tokenizer,
                                        _prompts(tokens.train, demo.train_prompts, p, seed),
                                        demo.completion_len, seed)
    held_chosen, held_rejected = preference_pairs(
        reference, tokenizer, _prompts(tokens.val, demo.eval_prompts, p, seed + 1),
        demo.completion_len, seed + 2)
    with torch.no_grad():
        ref_logps = (completion_logprob(reference, chosen, p),
                     completion_logprob(reference, rejected, p))
        held_ref = (completion_logprob(reference, held_chosen, p),
                    completion_logprob(reference, held_rejected, p))
    sampling_seconds = time.perf_counter() - began
    eval_prompts = _prompts(tokens.val, demo.eval_prompts, p, seed + 3)

    def measure() -> dict:
        samples = sample_completions(policy, eval_prompts[:3], demo.completion_len, seed + 6)
        return {**pair_metrics(policy, held_ref, held_chosen, held_rejected, p, demo.beta),
                **head_to_head(policy, reference, tokenizer, eval_prompts, demo.completion_len,
                               seed + 4),
                "lm_val_loss": mean_loss(policy, tokens.val, demo.lm_eval_batches, 12,
                                         reference.config.block_size),
                "samples": [[tokenizer.decode(row[:p].tolist()), tokenizer.decode(row[p:].tolist())]
                            for row in samples]}

    before = measure()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=demo.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed + 5)
    began = time.perf_counter()
    for _ in range(demo.steps):
        policy.train()
        pick = torch.randint(len(chosen), (demo.batch_pairs,), generator=generator)
        loss, _, _ = dpo_loss(completion_logprob(policy, chosen[pick], p),
                              completion_logprob(policy, rejected[pick], p),
                              ref_logps[0][pick], ref_logps[1][pick], beta=demo.beta)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    train_seconds = time.perf_counter() - began
    result = {"demo": name, "base": str(base), "pairs": len(chosen),
              "held_out_pairs": len(held_chosen), "steps": demo.steps, "beta": demo.beta,
              "lr": demo.lr, "sampling_seconds": round(sampling_seconds, 1),
              "train_seconds": round(train_seconds, 1), "before": before, "after": measure()}
    (out / "dpo_demo.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def report(result: dict) -> str:
    lines = [f"{result['pairs']} training pairs, {result['held_out_pairs']} held out; "
             f"{result['steps']} DPO steps (beta {result['beta']}, lr {result['lr']}) in "
             f"{result['train_seconds']} s", "| | before | after |", "|---|---|---|"]
    for key in ("dpo_loss", "preference_accuracy", "win_rate", "policy_vowel_share",
                "reference_vowel_share", "lm_val_loss"):
        lines.append(f"| {key} | {result['before'][key]:.4f} | {result['after'][key]:.4f} |")
    lines += [f"after: {prompt!r} -> {completion!r}"
              for prompt, completion in result["after"]["samples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_09_modern.models.preference",
                                     description=plain_help(__doc__.split("\n\n")[3]))
    parser.add_argument("--preset", default="full", choices=sorted(DEMOS))
    parser.add_argument("--base", type=Path, default=None,
                        help="a phase 7 run directory to start from (default: pretrain one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default="tinyshakespeare")
    parser.add_argument("--out", type=Path, default=None,
                        help="default runs/phase_09/dpo/<preset>")
    for name, kind in (("lr", float), ("beta", float), ("steps", int)):
        parser.add_argument(f"--{name}", type=kind, default=None,
                            help=f"override the preset's {name}")
    args = parser.parse_args(argv)
    out = args.out or Path("runs/phase_09/dpo") / args.preset
    overrides = {name: getattr(args, name) for name in ("lr", "beta", "steps")
                 if getattr(args, name) is not None}
    result = run_demo(args.preset, out, args.base, args.threads, args.data, **overrides)
    print(report(result))
    print(f"wrote {out}/dpo_demo.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
