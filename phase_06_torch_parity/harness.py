"""Run one NumPy op and its torch twin on the same inputs and compare everything.

The NumPy side is the op contract (``out, cache = forward(*arrays, **options)``, then
``backward(dout, cache)``). The torch side runs ``torch_reference`` on tensors that require
gradients and lets autograd differentiate ``sum(out * dout)`` with the same random ``dout``.
Both forward outputs and every gradient are compared with the project's relative error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from phase_00_math.gradcheck import relative_error, upstream_rng

TORCH_DTYPES = {np.float64: torch.float64, np.float32: torch.float32}
# How much further from the float64 truth our float32 result may be than torch's float32 one.
# Where a derivative is computed from a rounded value (1 - tanh^2 near saturation), one ulp of
# difference between NumPy's and torch's float32 tanh is a visible share of the result, so the
# ratio of the two errors wanders; over 1000 seeds per case it stayed below this.
FLOAT32_SLACK = 10.0
# A gradient whose whole difference from the reference is within ROUNDING_MARGIN machine epsilons
# of the case's largest gradient is rounding, not a bug: a gradient that is a cancelling sum
# (attention's q side, rows of dS summing to 0) can be 1e-10 of the others, and both sides then
# carry an error of eps times the terms, not of the result (cross-attention, seed 9450342:
# difference 4e-15 on a q gradient of 2e-10 beside a kv gradient of 2.9). A wrong backward is
# off by the size of its gradient, orders above this.
ROUNDING_MARGIN = 100.0


@dataclass(frozen=True)
class ParityCase:
    """One NumPy op paired with a torch reference.

    ``make_inputs(rng)`` returns ``(arrays, options)``: the float arrays (or None) passed
    positionally, in float64, and the keyword options (ints, masks, flags) passed to both sides.
    ``tol`` is the float64 tolerance, ``tol_float32`` the float32 one; ``reason`` says why a
    tolerance is looser than the default.
    """

    name: str
    forward: Callable
    backward: Callable
    torch_reference: Callable
    make_inputs: Callable[[np.random.Generator], tuple[tuple, dict]]
    tol: float = 1e-8
    tol_float32: float = 2e-5
    reason: str = ""
    arg_names: tuple[str, ...] = field(default=())

    @property
    def op(self) -> str:
        """``module.function`` of the NumPy forward, the key the coverage test looks for."""
        return f"{self.forward.__module__}.{self.forward.__name__}"


@dataclass
class ParityResult:
    """Errors of one run. In float64 the reference is torch in float64. In float32 the reference
    is torch in float64 on the same (float32-rounded) inputs, and torch's own float32 error
    against it is kept too: an op passes when it is within ``tol`` or no more than
    ``FLOAT32_SLACK`` times as far from the truth as torch's float32 is (where torch's float32
    loses digits, ours may too; a float32 bug costs orders of magnitude, not a factor of 10)."""

    case: str
    dtype: str
    seed: int
    forward_error: float
    grad_errors: dict[str, float]
    tol: float
    torch_forward_error: float = 0.0
    torch_grad_errors: dict[str, float] = field(default_factory=dict)
    at_rounding: frozenset = frozenset()  # arguments whose difference is rounding alone

    @property
    def worst(self) -> float:
        return max([self.forward_error, *self.grad_errors.values()])

    def _allowed(self, torch_error: float) -> float:
        return max(self.tol, FLOAT32_SLACK * torch_error)

    @property
    def passed(self) -> bool:
        """Every error within its allowance; a NaN error (a NaN output) fails, as it compares
        false with everything."""
        if not self.forward_error <= self._allowed(self.torch_forward_error):
            return False
        return all(err <= self._allowed(self.torch_grad_errors.get(name, 0.0))
                   or name in self.at_rounding for name, err in self.grad_errors.items())


def _tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def to_torch(value, dtype: torch.dtype, *, requires_grad: bool = False):
    """NumPy arrays to tensors: floats in ``dtype``, integers as int64, booleans as bool."""
    if value is None or not isinstance(value, np.ndarray):
        return value
    if value.dtype == np.bool_:
        return torch.from_numpy(value.copy())
    if np.issubdtype(value.dtype, np.integer):
        return torch.from_numpy(value.astype(np.int64))
    tensor = torch.tensor(value, dtype=dtype)
    return tensor.requires_grad_(requires_grad)


def _cast_options(options: dict, np_dtype) -> dict:
    """Float arrays among the options (running statistics, say) follow the run's dtype."""
    return {k: v.astype(np_dtype) if isinstance(v, np.ndarray)
            and np.issubdtype(v.dtype, np.floating) else v for k, v in options.items()}


def torch_run(case: ParityCase, arrays: tuple, options: dict, douts: tuple,
              dtype: torch.dtype) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The torch reference's outputs and autograd gradients of ``sum(out * dout)``, in ``dtype``;
    ``None`` for an absent array argument."""
    tensors = [to_torch(a, dtype, requires_grad=True) for a in arrays]
    torch_options = {k: to_torch(v, dtype) for k, v in options.items()}
    outs = _tuple(case.torch_reference(*tensors, **torch_options))
    if len(outs) != len(douts):
        raise AssertionError(f"{case.name}: torch returned {len(outs)} outputs, "
                             f"NumPy {len(douts)}")
    loss = sum((o * torch.tensor(d, dtype=dtype)).sum() for o, d in zip(outs, douts,
                                                                          strict=True))
    present = [t for t in tensors if t is not None]
    found = iter(torch.autograd.grad(loss, present, allow_unused=True))
    grads = []
    for array, tensor in zip(arrays, tensors, strict=True):
        if tensor is None:
            grads.append(None)
            continue
        grad = next(found)
        grads.append(np.zeros_like(array) if grad is None else grad.numpy())
    return [o.detach().numpy() for o in outs], grads


def _errors(names, outs, grads, ref_outs, ref_grads) -> tuple[float, dict[str, float]]:
    forward = max(relative_error(o, r) for o, r in zip(outs, ref_outs, strict=True))
    per_arg = {name: relative_error(g, r)
               for name, g, r in zip(names, grads, ref_grads, strict=True) if r is not None}
    return forward, per_arg


def _at_rounding(names, grads, ref_grads, dtype) -> frozenset:
    """The arguments whose gradient differs from the reference by no more than
    ``ROUNDING_MARGIN`` epsilons of the largest reference gradient's norm."""
    pairs = [(n, g, r) for n, g, r in zip(names, grads, ref_grads, strict=True) if r is not None]
    scale = max((float(np.linalg.norm(r)) for _, _, r in pairs), default=0.0)
    floor = ROUNDING_MARGIN * float(np.finfo(dtype).eps) * scale
    return frozenset(n for n, g, r in pairs
                     if float(np.linalg.norm(np.asarray(g, np.float64) - r)) <= floor)


def run_case(case: ParityCase, seed: int, dtype=np.float64) -> ParityResult:
    rng = np.random.default_rng(seed)
    arrays64, options = case.make_inputs(rng)
    arrays = tuple(None if a is None else np.asarray(a, dtype=dtype) for a in arrays64)
    options = _cast_options(options, dtype)
    names = case.arg_names or (("x",) if len(arrays) == 1 else
                               tuple(f"arg{i}" for i in range(len(arrays))))

    out, cache = case.forward(*arrays, **options)
    outs = _tuple(out)
    up = upstream_rng(seed)
    douts = tuple(up.standard_normal(np.shape(o)).astype(dtype) for o in outs)
    grads = _tuple(case.backward(douts if len(douts) > 1 else douts[0], cache))
    if len(grads) != len(arrays):
        raise AssertionError(f"{case.name}: backward returned {len(grads)} gradients for "
                             f"{len(arrays)} arrays")

    truth_outs, truth_grads = torch_run(case, arrays, options, douts, torch.float64)
    forward_error, grad_errors = _errors(names, outs, grads, truth_outs, truth_grads)
    rounding = _at_rounding(names, grads, truth_grads, dtype)
    if np.dtype(dtype) == np.float64:
        return ParityResult(case.name, "float64", seed, forward_error, grad_errors, case.tol,
                            at_rounding=rounding)
    torch_outs, torch_grads = torch_run(case, arrays, options, douts, TORCH_DTYPES[np.float32])
    torch_forward, torch_grad_errors = _errors(names, torch_outs, torch_grads, truth_outs,
                                               truth_grads)
    return ParityResult(case.name, "float32", seed, forward_error, grad_errors,
                        case.tol_float32, torch_forward, torch_grad_errors, rounding)
