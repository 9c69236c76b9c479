"""Phase 7's GPT with its MLP activation replaced by a leaky integrate-and-fire neuron.

``lif`` is ``phase_09_modern/ops/lif_neuron.py``'s neuron in torch: the same unrolled
recurrence, with the Heaviside a ``torch.autograd.Function`` (``SpikeFunction``) whose backward
is the surrogate; autograd does the backward through time. ``spiking_gpt`` builds phase 7's
GPT and swaps each block's MLP for a ``SpikingMLP`` holding the very same ``c_fc`` and ``c_proj``:

    c_proj(lif(c_fc(x)))        instead of        c_proj(gelu(c_fc(x)))

so an ANN and a spiking model built under one seed start from identical weights. Only the MLP's
hidden layer spikes: the attention, the norms and ``c_fc`` (whose input is real-valued) stay as
they were. ``c_proj`` is the one layer whose input is spikes, so it is the one whose work can be
counted as synaptic operations.

``SpikeMonitor`` hooks every ``SpikingMLP``'s neuron and counts, over whatever forward passes run
while it is attached: the firing rate of each layer, the neurons that never fire (dead), and the
synaptic operations of ``c_proj``. A spike-driven layer does one accumulate (add the weight
column) per input spike per output, summed over the T steps; the ANN layer does one
multiply-accumulate per input per output. Energy uses 0.9 pJ per 32-bit float add and 4.6 pJ per
32-bit float multiply-accumulate (3.7 + 0.9), Horowitz's 45 nm figures (ISSCC 2014) as the SNN
literature uses them; memory traffic (reading the weights and the membrane state), usually the
larger cost, is not counted.
Notes: ``phase_09_modern/notes/21_spiking_transformer.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from phase_07_gpt.model import GPT, MLP, GPTConfig

ENERGY_PER_ACCUMULATE_PJ = 0.9
ENERGY_PER_MAC_PJ = 4.6
SURROGATES = ("fast_sigmoid", "arctan")
RESETS = ("subtract", "zero")


def surrogate_grad(v: torch.Tensor, surrogate: str, slope: float) -> torch.Tensor:
    """fast sigmoid: 1 / (1 + k |v|)^2; arctan: (k / 2) / (1 + (pi k v / 2)^2)."""
    if surrogate == "fast_sigmoid":
        return 1.0 / (1.0 + slope * v.abs()) ** 2
    return (slope / 2.0) / (1.0 + (math.pi * slope * v / 2.0) ** 2)


class SpikeFunction(torch.autograd.Function):
    """Forward: H(v) = 1 where v >= 0, else 0. Backward: the surrogate at v."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, surrogate: str, slope: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.surrogate, ctx.slope = surrogate, slope
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        return grad * surrogate_grad(v, ctx.surrogate, ctx.slope), None, None


@dataclass(frozen=True)
class LIFConfig:
    """The neuron's options, as ``spiking.lif_forward`` names them. beta = 0.5 is a membrane
    time constant of 2 steps (Spikformer's tau = 2)."""

    steps: int = 4
    beta: float = 0.5
    threshold: float = 1.0
    surrogate: str = "arctan"
    slope: float = 2.0
    reset: str = "subtract"
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"LIFConfig.steps must be a positive integer, got {self.steps!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"LIFConfig.beta must be in [0, 1], got {self.beta}")
        if not self.threshold > 0 or not self.slope > 0:
            raise ValueError(f"LIFConfig.threshold and slope must be > 0, got "
                             f"{self.threshold}, {self.slope}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"LIFConfig.surrogate must be one of {SURROGATES}, "
                             f"got {self.surrogate!r}")
        if self.reset not in RESETS:
            raise ValueError(f"LIFConfig.reset must be one of {RESETS}, got {self.reset!r}")


def lif(x: torch.Tensor, *, beta: float = 0.5, threshold: float = 1.0, steps: int = 4,
        surrogate: str = "arctan", slope: float = 2.0, reset: str = "subtract",
        detach_reset: bool = True) -> torch.Tensor:
    """x: (...) fed at every step -> (...) the mean firing rate over ``steps`` steps."""
    u = torch.zeros_like(x)
    s = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for _ in range(steps):
        fired = s.detach() if detach_reset else s
        u = beta * u + x - threshold * fired if reset == "subtract" else \
            beta * u * (1.0 - fired) + x
        s = SpikeFunction.apply(u - threshold, surrogate, slope)
        total = total + s
    return total / steps


class LIF(nn.Module):
    """``lif`` as a module; a forward hook sees the firing rate (B, T, 4C) it returns."""

    def __init__(self, config: LIFConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        return lif(x, beta=c.beta, threshold=c.threshold, steps=c.steps, surrogate=c.surrogate,
                   slope=c.slope, reset=c.reset, detach_reset=c.detach_reset)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.__dict__.items())


class SpikingMLP(nn.Module):
    """c_proj(lif(c_fc(x))): phase 7's MLP with the GELU replaced; its Linear layers are the ones
    handed in (so their weights, and their state-dict names, are kept)."""

    def __init__(self, mlp: MLP, config: LIFConfig) -> None:
        super().__init__()
        self.c_fc, self.c_proj, self.dropout = mlp.c_fc, mlp.c_proj, mlp.dropout
        self.lif = LIF(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.lif(self.c_fc(x))))


def spiking_gpt(config: GPTConfig, lif_config: LIFConfig) -> GPT:
    """Phase 7's GPT, built and initialised as usual, then every block's MLP swapped for a
    ``SpikingMLP`` around the same Linear layers."""
    model = GPT(config)
    for block in model.transformer.h:
        block.mlp = SpikingMLP(block.mlp, lif_config)
    return model


def linear_macs_per_token(model: nn.Module) -> int:
    """Multiply-accumulates per token of every ``nn.Linear`` (in x out each; the attention's
    q k^T and weights v products, which grow with the context, are left out)."""
    return sum(m.in_features * m.out_features for m in model.modules()
               if isinstance(m, nn.Linear))


class SpikeMonitor:
    """Forward hooks on the neuron of every ``SpikingMLP`` in ``model``; use as a context
    manager (the hooks come off on exit). Per layer it keeps each hidden unit's spike count
    (rate x T, summed over tokens) and the number of tokens seen."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [(name, m) for name, m in model.named_modules()
                       if isinstance(m, SpikingMLP)]
        if not self.layers:
            raise ValueError("SpikeMonitor: the model has no SpikingMLP to watch")
        self.spikes = {name: torch.zeros(m.c_proj.in_features, dtype=torch.float64)
                       for name, m in self.layers}
        self.tokens = dict.fromkeys(self.spikes, 0)
        self._handles = []

    def __enter__(self) -> SpikeMonitor:
        for name, mlp in self.layers:
            self._handles.append(mlp.lif.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def record(module: LIF, inputs, rate: torch.Tensor) -> None:
            counts = torch.round(rate.detach().double() * module.config.steps)
            self.spikes[name] += counts.reshape(-1, counts.shape[-1]).sum(0).cpu()
            self.tokens[name] += counts[..., 0].numel()
        return record

    def summary(self) -> list[dict]:
        """Per layer: ``firing_rate`` (spikes / (tokens x units x T)), ``dead_fraction`` (units
        that never fired), and per token: ``sops`` (spikes x c_proj's outputs) against ``macs``
        (c_proj's inputs x outputs, the ANN layer's work), each with its energy in pJ."""
        rows = []
        for name, mlp in self.layers:
            spikes, tokens = self.spikes[name], self.tokens[name]
            if tokens == 0:
                raise ValueError(f"SpikeMonitor: layer {name} saw no tokens")
            units, fan_out, steps = (mlp.c_proj.in_features, mlp.c_proj.out_features,
                                     mlp.lif.config.steps)
            sops = spikes.sum().item() * fan_out / tokens
            macs = units * fan_out
            rows.append({"layer": name, "tokens": tokens,
                         "firing_rate": spikes.sum().item() / (tokens * units * steps),
                         "dead_fraction": (spikes == 0).double().mean().item(),
                         "sops": sops, "macs": macs,
                         "energy_snn_pj": sops * ENERGY_PER_ACCUMULATE_PJ,
                         "energy_ann_pj": macs * ENERGY_PER_MAC_PJ})
        return rows
