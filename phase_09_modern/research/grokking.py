"""Grokking: modular arithmetic learnt long after it has been memorised.

Power et al. (2022) trained small transformers on tables like ``a / b mod 97`` from a fraction of
the pairs: training accuracy reached 100% early while validation accuracy stayed at chance, then,
thousands of steps later and with weight decay, validation accuracy rose to 100% too. Nanda et
al. (2023) reproduced it on ``a + b mod 113`` (one layer, width 128, four heads, MLP 512, ReLU, no
layer norm, full-batch AdamW with lr 1e-3, weight decay 1, betas (0.9, 0.98), 30% of the pairs)
and found what the network learns: embeddings built from a few Fourier frequencies, and a
trigonometric identity for the sum.

This module is that setup in torch: the data, the model, a full-batch trainer with the
interventions the experiments compare (weight decay, decay toward the initial weights, dropout,
Gaussian weight noise, the training fraction), and the Fourier spectrum of the embeddings.
Notes: ``phase_09_modern/notes/20_grokking.md``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from phase_01_nn.metrics import MetricsLog, read_metrics, write_summary
from phase_07_gpt.checkpoint import save_checkpoint

OPERATIONS = ("add", "div")
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "ckpt.pt"


@dataclass(frozen=True)
class GrokConfig:
    op: str = "add"  # "add": a + b mod p (Nanda et al.); "div": a / b mod p (Power et al.)
    p: int = 113
    train_fraction: float = 0.3
    d_model: int = 128
    n_head: int = 4
    d_mlp: int = 512
    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 1.0
    decay_to_init: bool = False  # decay toward the initial weights instead of toward zero
    dropout: float = 0.0
    weight_noise: float = 0.0  # std of Gaussian noise added to every weight after each step
    beta1: float = 0.9
    beta2: float = 0.98
    max_steps: int = 25_000
    eval_interval: int = 100
    stop_after_grok: int = 10  # stop this many evaluations after val acc first reaches 99%; 0 never
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.op not in OPERATIONS:
            raise ValueError(f"op must be one of {OPERATIONS}, got {self.op!r}")
        if self.p < 3 or any(self.p % d == 0 for d in range(2, math.isqrt(self.p) + 1)):
            raise ValueError(f"p must be a prime >= 3 (division needs inverses), got {self.p}")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head "
                             f"({self.n_head})")
        for name in ("max_steps", "eval_interval", "d_model", "d_mlp", "n_head", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("weight_decay", "dropout", "weight_noise", "warmup_steps", "stop_after_grok"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def modular_dataset(op: str, p: int, train_fraction: float, seed: int):
    """Every pair of the table as tokens ``[a, b, =]`` (``=`` is token p) with its answer, split
    at random into train and validation. Division leaves out b = 0."""
    a, b = np.meshgrid(np.arange(p), np.arange(1 if op == "div" else 0, p), indexing="ij")
    a, b = a.ravel(), b.ravel()
    if op == "add":
        answer = (a + b) % p
    else:  # a * b^(p-2) = a / b by Fermat's little theorem
        answer = (a * np.array([pow(int(x), p - 2, p) for x in b])) % p
    tokens = np.stack([a, b, np.full_like(a, p)], axis=1)
    order = np.random.default_rng(seed).permutation(len(a))
    cut = int(round(train_fraction * len(a)))
    pick = lambda idx: (torch.from_numpy(tokens[idx]), torch.from_numpy(answer[idx]))  # noqa: E731
    return pick(order[:cut]), pick(order[cut:])


class ModularTransformer(nn.Module):
    """Nanda et al.'s one-layer model: embeddings + learned positions, causal multi-head
    attention, a ReLU MLP, no layer norm; the answer is read out at the ``=`` position."""

    def __init__(self, p: int, d_model: int, n_head: int, d_mlp: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.embed = nn.Embedding(p + 1, d_model)
        self.pos = nn.Parameter(torch.randn(3, d_model) / math.sqrt(d_model))
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.fc = nn.Linear(d_model, d_mlp)
        self.out = nn.Linear(d_mlp, d_model)
        self.unembed = nn.Linear(d_model, p, bias=False)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.embed.weight, std=1 / math.sqrt(d_model))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, 3) -> logits over the p answers: (B, p)."""
        x = self.embed(tokens) + self.pos
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        # With one layer only the last position reaches the output, and under the causal mask
        # its query sees every key: attend from it alone and run the MLP on it alone (a third
        # of the work of computing all three positions, with the same result).
        y = F.scaled_dot_product_attention(q[:, :, -1:], k, v)  # (B, n_head, 1, C / n_head)
        x = x[:, -1] + self.drop(self.proj(y.reshape(B, C)))
        x = x + self.drop(self.out(F.relu(self.fc(x))))
        return self.unembed(x)


def evaluate(model: nn.Module, tokens: torch.Tensor, answers: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) on a whole split; the loss in float64, as Nanda et al. compute it (in
    float32 a confident model's loss rounds to steps that make the late phase jumpy)."""
    logits = model(tokens).double()
    return (F.cross_entropy(logits, answers).item(),
            (logits.argmax(-1) == answers).double().mean().item())


def fourier_spectrum(embedding: np.ndarray) -> np.ndarray:
    """The share of the embedding's squared norm at each frequency k = 0..n//2, from the real
    Fourier transform of the n token rows (``embedding: (n, d)``) along the token axis.
    Frequencies k and n - k are one real frequency, so their energy is summed (for even n the
    Nyquist term k = n/2 has no mirror)."""
    n = embedding.shape[0]
    power = np.abs(np.fft.rfft(embedding, axis=0)) ** 2  # (n//2 + 1, d)
    per_frequency = power.sum(axis=1)
    per_frequency[1:(n + 1) // 2] *= 2  # the mirrored half
    return per_frequency / per_frequency.sum()


def primitive_root(p: int) -> int:
    """The smallest g whose powers g^0 .. g^(p-2) mod p are every residue 1 .. p-1."""
    factors = {q for q in range(2, p) if (p - 1) % q == 0
               and all(q % r for r in range(2, math.isqrt(q) + 1))}
    return next(g for g in range(2, p) if all(pow(g, (p - 1) // q, p) != 1 for q in factors))


def discrete_log_order(p: int) -> np.ndarray:
    """The residues 1 .. p-1 in the order g^0, g^1, ..., g^(p-2) for the primitive root g.
    Row i of the embedding reordered this way belongs to the residue whose discrete log is i;
    a / b mod p becomes log a - log b mod (p - 1), an addition, so a network that divides can
    use waves over this order as an adding one uses waves over the residues themselves."""
    g = primitive_root(p)
    return np.array([pow(g, i, p) for i in range(p - 1)])


def embedding_spectrum(embedding: np.ndarray, op: str) -> np.ndarray:
    """The spectrum of the token embedding's p residue rows (``embedding: (p, d)``): along the
    residues for addition, along their discrete logs (residue 0 left out) for division."""
    p = embedding.shape[0]
    return fourier_spectrum(embedding if op == "add" else embedding[discrete_log_order(p)])


def key_frequencies(spectrum: np.ndarray, share: float = 0.9) -> list[int]:
    """The fewest frequencies (k >= 1) whose energy reaches ``share`` of all but k = 0."""
    order = np.argsort(spectrum[1:])[::-1] + 1
    cumulative = np.cumsum(spectrum[order]) / spectrum[1:].sum()
    return sorted(int(k) for k in order[: int(np.searchsorted(cumulative, share)) + 1])


def first_step_at(rows: list[dict], key: str, level: float = 0.99) -> int | None:
    return next((r["step"] for r in rows if r.get(key, -1.0) >= level), None)


def train_grokking(config: GrokConfig, out: str | Path, *, resume: bool = False,
                   quiet: bool = False) -> dict:
    """Full-batch training as the module docstring says; metrics every ``eval_interval`` steps,
    an atomic checkpoint with them (``resume`` continues from it); returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    (train_x, train_y), (val_x, val_y) = modular_dataset(config.op, config.p,
                                                         config.train_fraction, config.seed)
    torch.manual_seed(config.seed)
    model = ModularTransformer(config.p, config.d_model, config.n_head, config.d_mlp,
                               config.dropout)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=0.0 if config.decay_to_init else config.weight_decay,
                                  betas=(config.beta1, config.beta2))
    noise = torch.Generator().manual_seed(config.seed + 1)
    start = 0
    ckpt = out / CHECKPOINT_FILE
    if resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"no checkpoint at {ckpt} to resume from")
        saved = torch.load(ckpt, weights_only=True)
        if saved["config"] != asdict(config):
            raise ValueError(f"{ckpt} was made with another config: {saved['config']}")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        initial = saved["initial"]
        torch.set_rng_state(saved["torch_rng"])
        noise.set_state(saved["noise_rng"])
        start = saved["step"]
    kept = [r for r in read_metrics(out / METRICS_FILE) if r["step"] < start] if resume else []
    log = MetricsLog(out / METRICS_FILE)
    for row in kept:
        log.write(**row)

    def schedule(step: int) -> float:
        return config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps \
            else config.lr

    began, grokked_at = time.perf_counter(), first_step_at(kept, "val_acc")
    bar = tqdm(total=config.max_steps, initial=start, disable=True if quiet else None,
               desc=f"grokking {config.op} mod {config.p}", unit="step")
    step = start
    try:
        for step in range(start, config.max_steps + 1):
            if step % config.eval_interval == 0 or step == config.max_steps:
                model.eval()
                with torch.no_grad():
                    train_loss, train_acc = evaluate(model, train_x, train_y)
                    val_loss, val_acc = evaluate(model, val_x, val_y)
                    weight_norm = math.sqrt(sum(p.square().sum().item()
                                                for p in model.parameters()))
                model.train()
                log.write(step=step, train_loss=train_loss, train_acc=train_acc,
                          val_loss=val_loss, val_acc=val_acc, weight_norm=weight_norm)
                bar.set_postfix(train_acc=f"{train_acc:.3f}", val_acc=f"{val_acc:.3f}")
                save_checkpoint(ckpt, {"model": model.state_dict(),
                                       "optimizer": optimizer.state_dict(), "initial": initial,
                                       "torch_rng": torch.get_rng_state(),
                                       "noise_rng": noise.get_state(), "step": step,
                                       "config": asdict(config)})
                if grokked_at is None and val_acc >= 0.99:
                    grokked_at = step
                if (config.stop_after_grok and grokked_at is not None
                        and step >= grokked_at + config.stop_after_grok * config.eval_interval):
                    break
            if step == config.max_steps:
                break
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(train_x).double(), train_y)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"the training loss is {loss.item()} at step {step}; "
                                         f"the last good checkpoint {ckpt} is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if config.decay_to_init and config.weight_decay:
                        p.sub_(lr * config.weight_decay * (p - initial[name]))
                    if config.weight_noise:
                        p.add_(torch.randn(p.shape, generator=noise) * config.weight_noise)
            bar.update(1)
    finally:
        bar.close()
        log.close()

    rows = read_metrics(out / METRICS_FILE)
    spectrum = embedding_spectrum(
        model.embed.weight.detach()[: config.p].numpy().astype(np.float64), config.op)
    summary = {
        "config": asdict(config), "steps": rows[-1]["step"],
        "seconds": round(time.perf_counter() - began, 1),
        "train_99_at": first_step_at(rows, "train_acc"),
        "val_99_at": first_step_at(rows, "val_acc"),
        "final_train_acc": rows[-1]["train_acc"], "final_val_acc": rows[-1]["val_acc"],
        "key_frequencies": key_frequencies(spectrum), "spectrum": spectrum.tolist(),
    }
    write_summary(out, summary)
    return summary


def size_config(size: str, **overrides) -> GrokConfig:
    """``full``: Nanda et al.'s setup; ``small``: p = 23, 60% of the pairs, width 32 and lr 1e-2,
    which groks in under 2000 steps (tens of seconds on a CPU)."""
    if size == "full":
        return replace(GrokConfig(), **overrides)
    if size == "small":
        return replace(GrokConfig(p=23, train_fraction=0.6, d_model=32, d_mlp=128, lr=1e-2,
                                  max_steps=3000, eval_interval=50), **overrides)
    raise ValueError(f"unknown size {size!r}; choose small or full")
