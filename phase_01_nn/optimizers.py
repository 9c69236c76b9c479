"""Optimizers that update a dict of parameter arrays in place from a dict of gradients.

The update rules follow PyTorch's ``torch.optim`` exactly (phase 6 checks 20 steps against it):
- SGD with momentum: ``buf = momentum * buf + g``; ``p -= lr * buf``
  (Nesterov: ``p -= lr * (g + momentum * buf)``).
- Adam (Kingma and Ba 2014): bias-corrected first and second moments; weight decay, if any, is
  L2 added to the gradient.
- AdamW (Loshchilov and Hutter 2017): the decay is decoupled, ``p -= lr * wd * p``, applied
  before the Adam step and outside the moments.
Derivations and history: ``phase_01_nn/notes/06_optimisation.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numba import njit


class Optimizer:
    """Holds references to the parameter arrays; ``step(grads)`` updates them in place."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not params:
            raise ValueError("the optimizer got no parameters")
        self.params = params
        self.lr = lr
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name in params}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        missing = self.params.keys() - grads.keys()
        if missing:
            raise KeyError(f"no gradient for parameters {sorted(missing)}")
        self.step_count += 1
        for name, param in self.params.items():
            self._update(name, param, grads[name])

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat arrays for a checkpoint: ``"<param>/<slot>"`` plus ``"step_count"`` and ``"lr"``."""
        flat = {f"{name}/{slot}": value.copy()
                for name, slots in self.state.items() for slot, value in slots.items()}
        flat["step_count"] = np.array(self.step_count)
        flat["lr"] = np.array(self.lr)
        return flat

    def load_state_dict(self, flat: dict[str, np.ndarray]) -> None:
        self.step_count = int(flat["step_count"])
        self.lr = float(flat["lr"])
        self.state = {name: {} for name in self.params}
        for key, value in flat.items():
            if "/" in key:
                name, slot = key.rsplit("/", 1)
                if name not in self.state:
                    raise KeyError(f"optimizer state names unknown parameter {name!r}")
                self.state[name][slot] = np.array(value, dtype=self.params[name].dtype)


class SGD(Optimizer):
    def __init__(self, params, lr: float, *, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def _update(self, name, param, grad):
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum:
            state = self.state[name]
            if "momentum" not in state:
                state["momentum"] = grad.astype(param.dtype, copy=True)
            else:
                state["momentum"] *= self.momentum
                state["momentum"] += grad
            buf = state["momentum"]
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class Adam(Optimizer):
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, no_decay: Iterable[str] = ()):
        super().__init__(params, lr)
        unknown = set(no_decay) - params.keys()
        if unknown:
            raise KeyError(f"no_decay names unknown parameters {sorted(unknown)}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.no_decay = frozenset(no_decay)

    def _update(self, name, param, grad):
        beta1, beta2 = self.betas
        decay = 0.0 if name in self.no_decay else self.weight_decay
        state = self.state[name]
        if not state:
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        if FUSED and _fusable(param, grad, state["exp_avg"], state["exp_avg_sq"]):
            t = self.step_count
            _adam_kernel(param.reshape(-1), grad.reshape(-1), state["exp_avg"].reshape(-1),
                         state["exp_avg_sq"].reshape(-1), self.lr / (1.0 - beta1**t),
                         1.0 / math.sqrt(1.0 - beta2**t), beta1, beta2, self.eps,
                         1.0 - self.lr * decay if self.decoupled else 1.0,
                         0.0 if self.decoupled else decay)
            return
        if decay and self.decoupled:
            param *= 1.0 - self.lr * decay
        elif decay:
            grad = grad + decay * param
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * grad
        v *= beta2
        v += (1.0 - beta2) * grad * grad
        t = self.step_count
        bias1, bias2 = 1.0 - beta1**t, 1.0 - beta2**t
        # math.sqrt, a Python float: np.sqrt would give a float64 scalar, which under NumPy 2's
        # promotion rules turns the float32 update into a float64 one
        denominator = np.sqrt(v) / math.sqrt(bias2) + self.eps
        param -= (self.lr / bias1) * m / denominator


# The fast path: Adam's step above as one numba loop over the elements, for float32 contiguous
# arrays (what the GPTs train with). The NumPy lines of ``Adam._update`` make about a dozen passes
# over each parameter-sized array, four of them into temporaries; the loop reads p, g, m and v
# once and writes p, m and v once. It computes each element in float64 and
# rounds once, so it agrees with the plain path to float32's rounding, not bit for bit
# (``tests/test_optimizers.py``). ``FUSED = False`` runs the plain path everywhere.
FUSED = True


def _fusable(*arrays: np.ndarray) -> bool:
    return all(a.dtype == np.float32 and a.flags.c_contiguous and a.shape == arrays[0].shape
               for a in arrays)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _adam_kernel(param, grad, exp_avg, exp_avg_sq, step_size, inv_sqrt_bias2, beta1, beta2,
                 eps, keep, l2):
    """p *= keep (AdamW's decoupled decay, 1 - lr wd); g += l2 p (Adam's L2 decay); then
    m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2, and
    p -= step_size m / (sqrt(v) / sqrt(bias2) + eps), step_size = lr / bias1."""
    for i in range(param.size):
        p = np.float64(param[i]) * keep
        g = np.float64(grad[i]) + l2 * np.float64(param[i])
        m = beta1 * np.float64(exp_avg[i]) + (1.0 - beta1) * g
        v = beta2 * np.float64(exp_avg_sq[i]) + (1.0 - beta2) * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = p - step_size * m / (math.sqrt(v) * inv_sqrt_bias2 + eps)


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr: float = 1e-3, *, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, no_decay: Iterable[str] = ()):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         no_decay=no_decay)
