"""LoRA (Hu et al. 2021): fine-tune a frozen linear layer through a low-rank update.

    y = x W^T + (alpha / r) x A^T B^T          W: (d_out, d_in) frozen; A: (r, d_in), B: (d_out, r)

A starts random and B at zero, so the wrapped layer starts as the base layer exactly; only
r (d_in + d_out) numbers per layer train instead of d_in d_out. After training, ``merge`` folds
(alpha / r) B A into W, so inference costs nothing extra; ``unmerge`` takes it back out.

``python -m phase_09_modern.models.lora [--preset tiny|full] [--speaker ROMEO] [--out DIR]`` is the
demo: pretrain phase 7's char GPT on every speech of Tiny Shakespeare except one speaker's, then
fine-tune on that speaker's speeches, once with LoRA and once in full, and compare the
validation losses, the trainable parameters and the time.
Notes: ``phase_09_modern/notes/12_lora.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from phase_01_nn.command_line import plain_help, run_command
from phase_01_nn.vocabulary import train_val_split
from phase_07_gpt.dataset import get_batch, read_text
from phase_07_gpt.presets import preset as train_preset
from phase_07_gpt.sample import load_run
from phase_07_gpt.train import train

GPT_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


class LoRALinear(nn.Module):
    """``base`` (an ``nn.Linear``, frozen) plus the rank-``r`` update scaled by alpha / r.
    A is initialised as ``nn.Linear`` initialises its weight (Kaiming-uniform, as the reference
    loralib and PEFT do; the paper says Gaussian: any random A works, because B = 0)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}")
        if r > min(base.in_features, base.out_features):
            raise ValueError(f"LoRA rank r = {r} is larger than the layer's smaller side "
                             f"min({base.in_features}, {base.out_features}): not low rank")
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        kind = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **kind))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **kind))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """(alpha / r) B A: (d_out, d_in), what training has added to W."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scaling * (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t())

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False


def apply_lora(model: nn.Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               targets: tuple[str, ...] = GPT_TARGETS) -> list[str]:
    """Freeze every parameter of ``model``, then wrap each ``nn.Linear`` whose name ends with
    one of ``targets`` (phase 7's GPT: attention and MLP projections) in a ``LoRALinear``.
    Returns the wrapped names; an empty match is an error, not a silent no-op."""
    model.requires_grad_(False)
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.endswith(targets)]
    if not names:
        raise ValueError(f"no nn.Linear in the model has a name ending with {targets}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    return names


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model):
        layer.unmerge()


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# The demo.

@dataclass(frozen=True)
class DemoConfig:
    pretrain_preset: str  # phase 7's preset for the base model
    finetune_steps: int
    batch_size: int
    lr: float
    eval_iters: int
    r: int = 8
    alpha: float = 16.0


DEMOS = {
    "tiny": DemoConfig(pretrain_preset="tiny", finetune_steps=20, batch_size=8, lr=1e-3,
                       eval_iters=4),
    "full": DemoConfig(pretrain_preset="shakespeare-char", finetune_steps=500, batch_size=12,
                       lr=1e-3, eval_iters=100),
}


def split_by_speaker(text: str, speaker: str) -> tuple[str, str]:
    """(every other speech, the speaker's speeches): Tiny Shakespeare's speeches are blocks
    separated by a blank line, each starting with "NAME:"."""
    speeches = text.split("\n\n")
    mine = [s for s in speeches if s.startswith(f"{speaker}:\n")]
    if not mine:
        raise ValueError(f"no speech by {speaker!r} in the corpus (names are upper case, "
                         f"such as 'ROMEO')")
    others = [s for s in speeches if not s.startswith(f"{speaker}:\n")]
    return "\n\n".join(others), "\n\n".join(mine)


@torch.no_grad()
def mean_loss(model: nn.Module, tokens: torch.Tensor, batches: int, batch_size: int,
              block_size: int, seed: int = 0) -> float:
    """The mean loss over the same ``batches`` random windows every call (own generator)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = [model(*get_batch(tokens, batch_size, block_size, generator,
                               torch.device("cpu")))[1].item() for _ in range(batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


def finetune(model: nn.Module, tokens: torch.Tensor, steps: int, batch_size: int,
             block_size: int, lr: float, seed: int = 0) -> float:
    """AdamW at a constant ``lr`` (no weight decay) on the parameters that require grad;
    returns the seconds taken."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    began = time.perf_counter()
    for _ in range(steps):
        _, loss = model(*get_batch(tokens, batch_size, block_size, generator,
                                   torch.device("cpu")))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - began


def run_demo(name: str, out: Path, speaker: str = "ROMEO", threads: int = 1,
             data: str = "tinyshakespeare", quiet: bool = False) -> dict:
    demo = DEMOS[name]
    torch.set_num_threads(threads)
    others, mine = split_by_speaker(read_text(data), speaker)
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "pretrain.txt"
    corpus.write_text(others, encoding="utf-8")
    # GPT-2's initialisation, as when the notes' figures were measured (phase 7's shakespeare-char
    # preset has since moved to init="width")
    config = train_preset(demo.pretrain_preset, data=str(corpus), threads=threads, device="cpu",
                          init="gpt2")
    began = time.perf_counter()
    pretrained = train(config, out / "pretrain", quiet=quiet, preset=demo.pretrain_preset)
    pretrain_seconds = time.perf_counter() - began
    base, tokenizer = load_run(out / "pretrain")
    try:
        speaker_ids = torch.tensor(tokenizer.encode(mine), dtype=torch.int64)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{speaker}'s speeches use a character the pretraining text lacks: "
                         f"{error}") from None
    train_ids, val_ids = train_val_split(speaker_ids)
    general_val = train_val_split(torch.tensor(tokenizer.encode(others)))[1]
    block = config.block_size

    def losses(model) -> dict:
        return {"speaker_val": mean_loss(model, val_ids, demo.eval_iters, demo.batch_size, block),
                "general_val": mean_loss(model, general_val, demo.eval_iters, demo.batch_size,
                                         block)}

    result = {"demo": name, "speaker": speaker, "speaker_chars": len(mine),
              "pretrain": {"steps": pretrained["steps"], "seconds": round(pretrain_seconds, 1),
                           "val_loss": pretrained["final_val_loss"]},
              "base": {"params": sum(p.numel() for p in base.parameters()), **losses(base)}}
    for mode in ("lora", "full"):
        model, _ = load_run(out / "pretrain")
        if mode == "lora":
            apply_lora(model, demo.r, demo.alpha)
        seconds = finetune(model, train_ids, demo.finetune_steps, demo.batch_size, block, demo.lr)
        result[mode] = {"trainable": trainable_parameters(model), "seconds": round(seconds, 1),
                        "steps": demo.finetune_steps, **losses(model)}
        if mode == "lora":
            merge_lora(model)
            result[mode]["speaker_val_merged"] = losses(model)["speaker_val"]
    (out / "lora_demo.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def report(result: dict) -> str:
    base = result["base"]
    lines = [f"pretrained without {result['speaker']} ({result['pretrain']['steps']} steps, "
             f"{result['pretrain']['seconds']} s); fine-tuned on {result['speaker']}'s "
             f"{result['speaker_chars']:,} characters for {result['lora']['steps']} steps",
             "| model | trainable params | fine-tune time | speaker val loss | "
             "general val loss |", "|---|---|---|---|---|",
             f"| pretrained | - | - | {base['speaker_val']:.4f} | {base['general_val']:.4f} |"]
    for mode, label in (("lora", "LoRA"), ("full", "full fine-tune")):
        r = result[mode]
        lines.append(f"| {label} | {r['trainable']:,} ({r['trainable'] / base['params']:.1%}) "
                     f"| {r['seconds']} s | {r['speaker_val']:.4f} | {r['general_val']:.4f} |")
    lines.append(f"LoRA merged into the weights: speaker val loss "
                 f"{result['lora']['speaker_val_merged']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase_09_modern.models.lora",
                                     description=plain_help(__doc__.split("\n\n")[3]))
    parser.add_argument("--preset", default="full", choices=sorted(DEMOS))
    parser.add_argument("--speaker", default="ROMEO")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default="tinyshakespeare")
    parser.add_argument("--out", type=Path, default=None,
                        help="default runs/phase_09/lora/<preset>")
    args = parser.parse_args(argv)
    out = args.out or Path("runs/phase_09/lora") / args.preset
    result = run_demo(args.preset, out, args.speaker, args.threads, args.data)
    print(report(result))
    print(f"wrote {out}/lora_demo.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
