"""Numerical gradient checking: the first rung of the verification ladder.

Every op in this project is a pair ``out, cache = name_forward(*arrays, **options)`` and
``grads = name_backward(dout, cache)``. To check a backward we turn the op into a scalar
``L = sum(out * dout)`` for a random upstream gradient ``dout``; then the backward applied to
``dout`` must equal the gradient of ``L``, which central differences estimate element by element.
See ``phase_00_math/notes/03_numerical_differentiation.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from phase_00_math.gradient_report import explain_mismatch, explain_shape, op_name

TINY = 1e-300
EPS = float(np.finfo(np.float64).eps)
ROUNDING_MARGIN = 100.0


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6):
    """Central-difference gradient of a scalar function ``f`` at ``x`` (any shape).

    ``df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every element i. The truncation error
    is O(h^2) and the rounding error O(eps / h); h = 1e-6 in float64 balances the two.
    ``x`` itself is left unchanged.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)
    flat_grad = grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + h
        f_plus = float(f(x))
        flat_x[i] = original - h
        f_minus = float(f(x))
        flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2.0 * h)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``||a - n|| / max(||a|| + ||n||, tiny)``: 0 when equal, 1 when one of them is zero."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    difference = np.linalg.norm((analytic - numeric).ravel())
    scale = np.linalg.norm(analytic.ravel()) + np.linalg.norm(numeric.ravel())
    return float(difference / max(scale, TINY))


def rounding_floor(loss_terms: float, size: int, h: float = 1e-6) -> float:
    """How large ``||analytic - numeric||`` can be from rounding alone, with a wide margin.

    Each central difference subtracts two evaluations of ``L = sum(out * dout)``. Each carries a
    rounding error of about ``EPS * loss_terms``, where ``loss_terms = sum(|out| * |dout|)`` is the
    size of the terms that were added up, so the difference quotient is off by about
    ``EPS * loss_terms / h``; over ``size`` elements the norm grows by ``sqrt(size)``. A gradient
    whose whole norm is near this level cannot be measured by central differences at all, so its
    relative error says nothing about the backward. ``ROUNDING_MARGIN`` (100) sits far above what
    correct backwards that failed the relative test were measured to reach (0.63 of the unscaled
    estimate, in 8000 draws of tiny causal attention;
    ``phase_00_math/notes/03_numerical_differentiation.md``, section 3.4).
    """
    return ROUNDING_MARGIN * float(np.sqrt(size)) * EPS * loss_terms / h


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def upstream_rng(seed: int) -> np.random.Generator:
    """The generator for the random upstream gradient. It is keyed by ``(seed, 1)``, not ``seed``
    alone: a test that drew its inputs from ``default_rng(seed)`` would otherwise get
    ``dout`` equal to its ``x``, a special direction that can hide a wrong backward."""
    return np.random.default_rng((seed, 1))


def _random_like(outputs: tuple, rng: np.random.Generator) -> tuple:
    return tuple(rng.standard_normal(np.shape(out)) for out in outputs)


def _projected_loss(outputs: tuple, douts: tuple) -> float:
    return float(sum(np.sum(out * dout) for out, dout in zip(outputs, douts, strict=True)))


def check_gradients(
    forward: Callable,
    backward: Callable,
    *arrays: np.ndarray | None,
    tol: float = 1e-7,
    seed: int = 0,
    h: float = 1e-6,
    names: Sequence[str] | None = None,
    **options,
) -> dict[str, float]:
    """Check ``backward`` against central differences of ``forward`` for every array argument.

    ``arrays`` are the differentiable (floating) positional arguments of ``forward``; ``None``
    stands for an absent optional argument (a missing bias) and must get ``None`` back.
    ``options`` are passed through untouched (integer targets, masks, flags).

    Returns ``{argument name: relative error}``. Raises ``AssertionError`` naming the argument
    and its error when any exceeds ``tol`` while the absolute difference is above the rounding
    floor of the central differences (``rounding_floor``: a gradient that is itself no larger
    than rounding noise has a meaningless relative error), or when ``backward`` returns the
    wrong number of gradients, a gradient of the wrong shape, or ``forward`` mutates its inputs.
    The message teaches (``phase_00_math/gradient_report.py``): it names the backward and the
    argument, shows a few of your values beside the numeric ones, and the constant ratio or the
    transpose or the misplaced mask when it sees one.
    """
    __tracebackhide__ = True  # pytest: show the message, not this function's source
    op = op_name(backward)
    if names is None:
        names = [f"arg{i}" for i in range(len(arrays))]
    if len(names) != len(arrays):
        raise ValueError(f"got {len(names)} names for {len(arrays)} arrays")
    arrays = tuple(
        None if a is None else np.array(a, dtype=np.float64, copy=True) for a in arrays
    )
    for name, array in zip(names, arrays, strict=True):
        if array is not None and not np.all(np.isfinite(array)):
            raise ValueError(f"argument {name!r} has non-finite values")
    originals = tuple(None if a is None else a.copy() for a in arrays)

    outputs, cache = forward(*arrays, **options)
    outputs = _as_tuple(outputs)
    douts = _random_like(outputs, upstream_rng(seed))
    loss_terms = float(sum(np.sum(np.abs(out) * np.abs(dout))
                           for out, dout in zip(outputs, douts, strict=True)))
    dout_arg = douts if len(douts) > 1 else douts[0]
    grads = _as_tuple(backward(dout_arg, cache))

    for name, array, original in zip(names, arrays, originals, strict=True):
        if array is not None and not np.array_equal(array, original):
            raise AssertionError(f"{op}: forward or backward mutated {name!r}")
    if len(grads) != len(arrays):
        raise AssertionError(f"{op} returned {len(grads)} gradients for {len(arrays)} array "
                             f"arguments ({', '.join(names)}): one per argument, in order")

    errors: dict[str, float] = {}
    failures: list[str] = []
    for index, (name, array, grad) in enumerate(zip(names, arrays, grads, strict=True)):
        if array is None:
            if grad is not None:
                raise AssertionError(f"{op}: argument {name!r} is None but backward returned "
                                     "a gradient for it (return None)")
            continue
        if grad is None:
            raise AssertionError(f"{op} returned None for argument {name!r}")
        grad = np.asarray(grad)
        if grad.shape != array.shape:
            raise AssertionError(explain_shape(op, name, grad.shape, array.shape))
        if grad.dtype != np.float64:
            raise AssertionError(f"{op}: the gradient of {name!r} is {grad.dtype}, not float64 "
                                 "(the inputs were float64; keep the dtype)")

        def loss_of(value, index=index):
            args = list(arrays)
            args[index] = value
            out, _ = forward(*args, **options)
            return _projected_loss(_as_tuple(out), douts)

        numeric = numerical_gradient(loss_of, array, h=h)
        errors[name] = relative_error(grad, numeric)
        if not errors[name] <= tol:
            difference = float(np.linalg.norm((grad - numeric).ravel()))
            floor = rounding_floor(loss_terms, array.size, h)
            if not difference <= floor:
                failures.append(f"{name}: relative error {errors[name]:.3e} (difference "
                                f"{difference:.3e}, rounding floor {floor:.1e})\n"
                                + explain_mismatch(op, name, grad, numeric))
    if failures:
        raise AssertionError(f"gradient check of {op} failed (tol {tol:.0e}) for "
                             + "\n".join(failures))
    return errors
