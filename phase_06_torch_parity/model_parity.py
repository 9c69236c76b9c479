"""Whole-model parity: phase 5's NumPy GPT against its torch twin, weights moved both ways.

Two checks, both in float64:
- one step: from the same weights and batch, the logits, the loss and every parameter's gradient
  (NumPy's hand-written backward against torch autograd) agree;
- training: 20 AdamW steps with warmup-cosine learning rates and global-norm clipping, on the same
  batches, give the same loss curve (and the same weights at the end).
Notes: ``phase_06_torch_parity/notes/02_whole_model_parity.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from phase_00_math.gradcheck import relative_error
from phase_01_nn.clipping import clip_grad_norm
from phase_01_nn.optimizers import AdamW
from phase_01_nn.schedule import warmup_cosine_lr
from phase_05_transformer_numpy.gpt import GPT, GPTConfig
from phase_06_torch_parity.gpt_twin import (
    TorchGPT,
    load_twin_weights_into,
    torch_to_numpy_params,
    twin_of,
)

MODEL_TOL = 1e-8

# Small models that together turn every switch of the architecture.
VARIANTS: dict[str, dict] = {
    "pre-LN, tied, no bias (CPU preset)": {},
    "pre-LN, biases": {"bias": True},
    "post-LN, biases": {"pre_ln": False, "bias": True},
    "untied head": {"tie_weights": False},
    "sinusoidal, tanh GELU": {"positions": "sinusoidal", "gelu": "tanh"},
}


def tiny_config(**switches) -> GPTConfig:
    return GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8, **switches)


@dataclass
class StepParity:
    logits: float
    loss: float
    grads: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.logits, self.loss, *self.grads.values())


def _batch(rng: np.random.Generator, config: GPTConfig, batch: int = 3):
    t = config.block_size
    return (rng.integers(0, config.vocab_size, (batch, t)),
            rng.integers(0, config.vocab_size, (batch, t)))


def _torch_grads(twin: TorchGPT, config: GPTConfig) -> dict[str, np.ndarray]:
    return torch_to_numpy_params({n: p.grad for n, p in twin.named_parameters()}, config)


def one_step_parity(config: GPTConfig, seed: int = 0, *, from_torch: bool = False) -> StepParity:
    """Logits, loss and every gradient of one forward/backward, NumPy vs torch, float64.

    ``from_torch=False`` builds the NumPy model and copies its weights into the twin;
    ``from_torch=True`` initialises the twin and copies its weights into the NumPy model.
    """
    rng = np.random.default_rng(seed)
    model = GPT(config, rng=rng, dtype=np.float64)
    if from_torch:
        torch.manual_seed(seed)
        twin = TorchGPT(config).double()
        load_twin_weights_into(model, twin)
    else:
        for param in model.parameters().values():  # move biases and gains off 0 and 1
            param += 0.1 * rng.standard_normal(param.shape)
        twin = twin_of(model)
    ids, targets = _batch(rng, config)
    model.zero_grad()
    logits, loss = model.forward(ids, targets)
    model.backward()
    torch_logits, torch_loss = twin(torch.from_numpy(ids), torch.from_numpy(targets))
    torch_loss.backward()
    theirs = _torch_grads(twin, config)
    ours = model.gradients()
    if ours.keys() != theirs.keys():
        raise AssertionError(f"parameter names differ: {sorted(ours.keys() ^ theirs.keys())}")
    return StepParity(
        logits=relative_error(logits, torch_logits.detach().numpy()),
        loss=relative_error(np.asarray(loss), torch_loss.detach().numpy()),
        grads={name: relative_error(ours[name], theirs[name]) for name in ours},
    )


def _lr(step: int, steps: int) -> float:
    return warmup_cosine_lr(step, max_lr=1e-2, min_lr=1e-3, warmup_steps=5, total_steps=steps)


def training_parity(config: GPTConfig, *, steps: int = 20, seed: int = 0,
                    max_norm: float = 1.0) -> tuple[list[float], list[float], float]:
    """``steps`` AdamW steps (decay 0.1 on matrices only, betas (0.9, 0.99), warmup-cosine,
    clipping at ``max_norm``) from the same weights on the same two batches, taken in turn, so
    that the loss falls far enough for the weights to move well away from their start.

    Returns the NumPy losses, the torch losses and the relative difference of the final weights.
    """
    rng = np.random.default_rng(seed)
    model = GPT(config, rng=rng, dtype=np.float64)
    twin = twin_of(model)
    params = model.parameters()
    no_decay = [name for name, p in params.items() if p.ndim < 2]
    optimizer = AdamW(params, lr=_lr(0, steps), betas=(0.9, 0.99), weight_decay=0.1,
                      no_decay=no_decay)
    decay_group = [p for n, p in twin.named_parameters() if p.ndim >= 2]
    other_group = [p for n, p in twin.named_parameters() if p.ndim < 2]
    torch_optimizer = torch.optim.AdamW(
        [{"params": decay_group, "weight_decay": 0.1},
         {"params": other_group, "weight_decay": 0.0}], lr=_lr(0, steps), betas=(0.9, 0.99))

    batches = [_batch(rng, config), _batch(rng, config)]
    ours, theirs = [], []
    for step in range(steps):
        ids, targets = batches[step % 2]
        model.zero_grad()
        _, loss = model.forward(ids, targets)
        model.backward()
        clip_grad_norm(model.gradients(), max_norm)
        optimizer.lr = _lr(step, steps)
        optimizer.step(model.gradients())
        ours.append(float(loss))

        torch_optimizer.zero_grad()
        _, torch_loss = twin(torch.from_numpy(ids), torch.from_numpy(targets))
        torch_loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm)
        for group in torch_optimizer.param_groups:
            group["lr"] = _lr(step, steps)
        torch_optimizer.step()
        theirs.append(torch_loss.item())
    final = torch_to_numpy_params(twin.state_dict(), config)
    weights = max(relative_error(params[name], final[name]) for name in params)
    return ours, theirs, weights
