"""Optimizers, the schedule and clipping against ``torch.optim`` and ``torch.nn.utils``.

From the same parameters and the same sequence of gradients, the NumPy optimizer and its torch
counterpart must take the same steps: 20 steps in float64 agree to 1e-12.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from phase_00_math.gradcheck import relative_error
from phase_01_nn.clipping import clip_grad_norm
from phase_01_nn.optimizers import SGD, Adam, AdamW
from phase_01_nn.schedule import warmup_cosine_lr

SHAPES = {"w": (4, 3), "b": (3,), "table": (5, 2)}

# name -> (NumPy optimizer factory, torch optimizer factory), same hyper-parameters on both sides
OPTIMIZERS: dict[str, tuple[Callable, Callable]] = {
    "sgd": (lambda p: SGD(p, lr=0.05),
            lambda p: torch.optim.SGD(p, lr=0.05)),
    "sgd momentum + weight decay": (
        lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01)),
    "sgd nesterov": (lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "adam": (lambda p: Adam(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-8),
             lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-8)),
    "adam + L2 weight decay": (lambda p: Adam(p, lr=1e-2, weight_decay=0.1),
                               lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1)),
    "adamw": (lambda p: AdamW(p, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1),
              lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)),
}


def _schedule(step: int, steps: int) -> float:
    return warmup_cosine_lr(step, max_lr=1.0, min_lr=0.1, warmup_steps=5, total_steps=steps)


def optimizer_parity(name: str, *, steps: int = 20, seed: int = 0,
                     scheduled: bool = True) -> float:
    """Largest relative difference between the parameters after each of ``steps`` steps.

    With ``scheduled``, both learning rates are multiplied by the warmup-cosine factor each step
    (set directly on the NumPy optimizer, through ``LambdaLR`` on the torch one)."""
    make_numpy, make_torch = OPTIMIZERS[name]
    rng = np.random.default_rng(seed)
    start = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(steps)]

    ours = {k: v.copy() for k, v in start.items()}
    optimizer = make_numpy(ours)
    base_lr = optimizer.lr
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    torch_optimizer = make_torch(list(theirs.values()))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        torch_optimizer, lambda step: _schedule(step, steps) if scheduled else 1.0)

    worst = 0.0
    for step, grad in enumerate(grads):
        optimizer.lr = base_lr * (_schedule(step, steps) if scheduled else 1.0)
        optimizer.step(grad)
        for key, tensor in theirs.items():
            tensor.grad = torch.from_numpy(grad[key].copy())
        torch_optimizer.step()
        scheduler.step()
        worst = max(worst, *(relative_error(ours[k], theirs[k].detach().numpy())
                             for k in SHAPES))
    return worst


def schedule_parity(steps: int = 100, max_lr: float = 3e-3, min_lr: float = 3e-4) -> float:
    """Without warmup, ``warmup_cosine_lr`` is torch's ``CosineAnnealingLR``: largest relative
    difference over steps 0..steps."""
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=max_lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=min_lr)
    worst = 0.0
    for step in range(steps + 1):
        ours = warmup_cosine_lr(step, max_lr=max_lr, min_lr=min_lr, warmup_steps=0,
                                total_steps=steps)
        worst = max(worst, abs(ours - optimizer.param_groups[0]["lr"]) / max_lr)
        optimizer.step()
        scheduler.step()
    return worst


def clipping_parity(max_norm: float, seed: int = 0) -> float:
    """``clip_grad_norm`` against ``torch.nn.utils.clip_grad_norm_``: the returned norm and the
    clipped gradients, largest relative difference."""
    rng = np.random.default_rng(seed)
    grads = {k: 3.0 * rng.standard_normal(s) for k, s in SHAPES.items()}
    tensors = []
    for value in grads.values():
        tensor = torch.zeros(value.shape, dtype=torch.float64, requires_grad=True)
        tensor.grad = torch.from_numpy(value.copy())
        tensors.append(tensor)
    torch_norm = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm))
    norm = clip_grad_norm(grads, max_norm)
    errors = [abs(norm - torch_norm) / torch_norm]
    errors += [relative_error(g, t.grad.numpy()) for g, t in zip(grads.values(), tensors,
                                                                 strict=True)]
    return max(errors)
