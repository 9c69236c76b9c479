"""Muon for the hidden matrices, AdamW for everything else, in one torch optimizer.

Muon (Keller Jordan et al. 2024) replaces the momentum update of a weight matrix by the nearest
semi-orthogonal matrix, approximated by five steps of a quintic Newton-Schulz iteration. It is
meant for the matrices inside the blocks only: the embeddings, the output head, the gains and the
biases keep AdamW, as in Keller Jordan's ``MuonWithAuxAdam`` and modded-nanogpt. Here both rules
live in one ``torch.optim.Optimizer`` whose groups say which rule they follow, so the trainer's
schedule, checkpoints and ``GradScaler`` see one optimizer as before.

The Muon group's learning rate is ``muon_lr``, and the schedule scales it with the AdamW rate
(``lr_scale = muon_lr / lr`` on the group). Phase 9's NumPy Muon
(``phase_09_modern/ops/muon.py``) derives the iteration and is checked against this one.
Notes: ``phase_07_gpt/notes/05_muon.md``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
OPTIMIZERS = ("adamw", "muon")


def check_optimizer_choice(optimizer: str, muon_lr: float) -> None:
    """The ``optimizer`` and ``muon_lr`` fields of phase 7's and phase 8's configs."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not muon_lr > 0:
        raise ValueError(f"muon_lr must be > 0, got {muon_lr}")


def newton_schulz(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """g: (A, B) -> (A, B) with g's singular vectors and singular values near 1:
    X <- a X + (b M + c M^2) X with M = X X^T, from X = G / ||G||_F, on the wide orientation."""
    a, b, c = NS_COEFFICIENTS
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / (x.norm() + eps)
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * (m @ m)) @ x
    return x.T if tall else x


def hidden_matrices(model: nn.Module) -> set[str]:
    """Names of the weights Muon updates: every ``nn.Linear`` weight except the output head's
    (``lm_head``), which, like the embeddings, is a lookup of one row per token."""
    return {f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and not name.endswith("lm_head")}


class MuonWithAdamW(torch.optim.Optimizer):
    """Groups with ``use_muon=True`` (2-D weights only) take Muon's step:

        buf <- mu buf + (1 - mu) g;  u = (1 - mu) g + mu buf  (Nesterov), else buf
        p <- p (1 - lr wd) - lr sqrt(max(1, A / B)) NS(u)        for p of shape (A, B)

    the others AdamW's (Loshchilov & Hutter 2017, bias-corrected, decoupled weight decay).
    """

    def __init__(self, groups: list[dict], *, lr: float, betas=(0.9, 0.99), eps: float = 1e-8,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5) -> None:
        for group in groups:
            if group.get("use_muon"):
                flat = [tuple(p.shape) for p in group["params"] if p.dim() != 2]
                if flat:
                    raise ValueError(f"Muon updates matrices only, got shapes {flat}")
        defaults = dict(lr=lr, betas=betas, eps=eps, momentum=momentum, nesterov=nesterov,
                        ns_steps=ns_steps, weight_decay=0.0, use_muon=False, lr_scale=1.0)
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            update = self._muon if group["use_muon"] else self._adamw
            for p in group["params"]:
                if p.grad is not None:
                    update(p, group)
        return loss

    def _muon(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf, mu = state["momentum_buffer"], group["momentum"]
        buf.lerp_(p.grad, 1.0 - mu)
        u = p.grad.lerp(buf, mu) if group["nesterov"] else buf
        p.mul_(1.0 - group["lr"] * group["weight_decay"])
        scale = math.sqrt(max(1.0, p.shape[0] / p.shape[1]))
        p.add_(newton_schulz(u, group["ns_steps"]), alpha=-group["lr"] * scale)

    def _adamw(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"].item()
        beta1, beta2 = group["betas"]
        state["exp_avg"].lerp_(p.grad, 1.0 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
        p.mul_(1.0 - group["lr"] * group["weight_decay"])
        denom = (state["exp_avg_sq"] / (1.0 - beta2 ** t)).sqrt_().add_(group["eps"])
        p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1.0 - beta1 ** t))


def muon_param_groups(model: nn.Module, *, lr: float, muon_lr: float,
                      weight_decay: float) -> list[dict]:
    """Three groups: the hidden matrices (Muon, no weight decay, ``lr_scale = muon_lr / lr``);
    the other tensors of two or more dimensions (AdamW with ``weight_decay``); vectors (AdamW,
    no decay), as ``make_optimizer`` groups them for AdamW alone."""
    hidden = hidden_matrices(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if n in hidden], "use_muon": True,
         "lr_scale": muon_lr / lr, "lr": muon_lr},
        {"params": [p for n, p in named if n not in hidden and p.dim() >= 2],
         "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in hidden and p.dim() < 2]},
    ]
