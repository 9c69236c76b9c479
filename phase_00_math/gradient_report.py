"""Failure messages that teach: what a wrong gradient looks like, in words a learner can act on.

The gradient checker (``phase_00_math/gradcheck.py``) knows more than "the relative error is too
large": it holds the analytic and the numeric gradient side by side. The common mistakes leave
recognisable marks. A missing factor makes the ratio of the two constant (0.5 everywhere: a lost
2); a flipped sign makes it -1; a transposed weight gradient equals the true one transposed; a
mask in the wrong place leaves entries nonzero where the true gradient is 0. This module reads
those marks and says them, with a few values of both gradients.
See ``phase_00_math/notes/03_numerical_differentiation.md``, section 3.7.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

SHOWN_ENTRIES = 4
# Entries whose true gradient is this small (relative to the largest) do not vote on the ratio.
RATIO_FLOOR = 1e-3
# How far apart the per-entry ratios may be and still count as one constant ratio.
RATIO_SPREAD = 1e-4


def op_name(function) -> str:
    """``module.function`` of a callable, or its repr when it has no name (a lambda's is kept)."""
    name = getattr(function, "__qualname__", None) or repr(function)
    module = getattr(function, "__module__", None)
    return f"{module}.{name}" if module and module != "__main__" else name


def constant_ratio(analytic: np.ndarray, numeric: np.ndarray) -> float | None:
    """``analytic / numeric`` when it is the same number at every entry that matters, else None.

    Entries where the numeric gradient is tiny are left out (their ratio is noise), and the
    analytic one must be tiny there too, or the ratio is not constant."""
    scale = float(np.max(np.abs(numeric), initial=0.0))
    if scale == 0.0:
        return None
    big = np.abs(numeric) > RATIO_FLOOR * scale
    if np.any(np.abs(analytic[~big]) > 10 * RATIO_FLOOR * scale):
        return None
    ratios = analytic[big] / numeric[big]
    middle = float(np.median(ratios))
    if np.max(np.abs(ratios - middle)) > RATIO_SPREAD * max(abs(middle), 1.0):
        return None
    return middle


def describe_ratio(ratio: float) -> str:
    """A hint for a constant ratio: a missing or extra small factor, a sign, a zero."""
    if abs(ratio) < 1e-12:
        return "your gradient is 0 everywhere the true one is not: is it computed at all?"
    if abs(ratio + 1.0) < 1e-3:
        return "your gradient is -1x the true one: the sign is flipped"
    guess = Fraction(abs(ratio)).limit_denominator(8)
    if abs(float(guess) - abs(ratio)) > 1e-3 * abs(ratio):
        return (f"your gradient is {ratio:.4g}x the true one everywhere: one scale factor is "
                f"wrong (a 1/N of a mean, a 1/sqrt(d), a temperature?)")
    what = f"a missing factor of {guess.denominator}" if guess.numerator == 1 else (
        f"a factor of {guess.numerator} too many" if guess.denominator == 1 else
        f"a factor of {guess} that should not be there")
    flipped = " and the sign is flipped" if ratio < 0 else ""
    return f"your gradient is {ratio:.3g}x the true one: {what}{flipped}?"


def describe_pattern(analytic: np.ndarray, numeric: np.ndarray) -> str | None:
    """Marks of a wrong backward other than a constant ratio: a transpose, a misplaced mask."""
    if analytic.ndim >= 2 and analytic.shape[-1] == analytic.shape[-2]:
        swapped = np.swapaxes(analytic, -1, -2)
        if np.allclose(swapped, numeric, rtol=1e-5, atol=1e-7 * _scale(numeric)) and \
                not np.allclose(analytic, numeric, rtol=1e-5, atol=1e-7 * _scale(numeric)):
            return "your gradient equals the true one transposed (last two axes swapped)"
    scale = _scale(numeric)
    true_zero = np.abs(numeric) <= 1e-7 * scale
    mine_zero = np.abs(analytic) <= 1e-7 * scale
    extra = int(np.sum(true_zero & ~mine_zero))
    lost = int(np.sum(~true_zero & mine_zero))
    if extra and not lost:
        return (f"{extra} of {numeric.size} entries are nonzero where the true gradient is 0: "
                "a mask (causal, padding, ReLU) lets through what it should block?")
    if lost and not extra:
        return (f"{lost} of {numeric.size} entries are 0 where the true gradient is not: "
                "a mask blocks what it should let through (off by one?)")
    return None


def _scale(array: np.ndarray) -> float:
    return max(float(np.max(np.abs(array), initial=0.0)), 1e-300)


def side_by_side(analytic: np.ndarray, numeric: np.ndarray, count: int = SHOWN_ENTRIES) -> str:
    """The ``count`` entries where the two differ most, as rows: index, analytic, numeric."""
    difference = np.abs(analytic - numeric).ravel()
    worst = np.argsort(-difference, kind="stable")[:count]
    rows = ["      index            yours         numeric"]
    for flat in sorted(worst):
        index = np.unravel_index(flat, analytic.shape) if analytic.ndim else ()
        rows.append(f"    {str(tuple(int(i) for i in index)):>9} {analytic.ravel()[flat]:>16.8g}"
                    f" {numeric.ravel()[flat]:>15.8g}")
    return "\n".join(rows)


def explain_mismatch(op: str, name: str, analytic: np.ndarray, numeric: np.ndarray) -> str:
    """The teaching lines for one wrong gradient (after the caller's one-line verdict)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    lines = [f"  in {op}, the gradient of {name!r}:"]
    ratio = constant_ratio(analytic, numeric)
    hint = describe_ratio(ratio) if ratio is not None else describe_pattern(analytic, numeric)
    if hint:
        lines.append(f"  {hint}")
    lines.append(side_by_side(analytic, numeric))
    return "\n".join(lines)


def explain_shape(op: str, name: str, got: tuple, expected: tuple) -> str:
    """One line for a gradient of the wrong shape, with the likely cause."""
    message = (f"{op}: the gradient of {name!r} has shape {got}, but {name!r} has shape "
               f"{expected}; a gradient always has its argument's shape")
    if tuple(reversed(got)) == tuple(expected):
        return message + " (yours is transposed)"
    if len(got) > len(expected):
        return message + " (sum over the broadcast axes, as the forward broadcast it)"
    return message
