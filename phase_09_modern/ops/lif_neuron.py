"""A leaky integrate-and-fire (LIF) neuron unrolled over T time steps, with a surrogate gradient.

The neuron keeps a membrane potential u. Each step it leaks (times beta), integrates its input,
and fires a spike when u reaches the threshold; firing resets u (Maass 1997 calls networks of
such units the "third generation" of neural networks):

    u_t = beta u_{t-1} + x - threshold s_{t-1}        reset "subtract" (the default)
    u_t = beta u_{t-1} (1 - s_{t-1}) + x              reset "zero"
    s_t = H(u_t - threshold),  u_0 = s_0 = 0,  t = 1..T
    out = (1/T) sum_t s_t                             the mean firing rate, in {0, 1/T, ..., 1}

The input is the same pre-activation x at every step (direct encoding: the first layer's real
number is the current, the spikes carry everything after it). The output is the mean firing
rate rather than the count, so its scale does not grow with T and one initialisation and learning
rate serve every T.

Subtracting the threshold keeps the charge above it, so with beta = 1 the count is
floor(T x / threshold) clipped to [0, T]: the rate is a quantised, clipped ReLU of x. Resetting to
zero throws that excess away, and two inputs that both cross the threshold in one step fire alike.

The Heaviside H has derivative 0 almost everywhere, so learning replaces it in the backward pass
only by a surrogate (Neftci, Mostafa & Zenke 2019), with v = u - threshold and slope k:

    fast sigmoid (SuperSpike, Zenke & Ganguli 2018): H'(v) ~ 1 / (1 + k |v|)^2
    arctan (Fang et al. 2021):                       H'(v) ~ (k / 2) / (1 + (pi k v / 2)^2)

Each surrogate is the exact derivative of a smooth step, ``surrogate_step``: with
``smooth=True`` the forward uses that step instead of H, and then ``lif_backward`` is the true
gradient of the forward, which is what a finite-difference check can verify.
``detach_reset=True`` treats the reset term as a constant in the backward (no gradient flows
through s_{t-1} into u_t), as SpikingJelly's ``detach_reset`` and Spikformer do; Zenke & Vogels
(2021) found learning works as well or better without that path.
Notes: ``phase_09_modern/notes/21_spiking_transformer.md``.
"""

from __future__ import annotations

import numpy as np

SURROGATES = ("fast_sigmoid", "arctan")
RESETS = ("subtract", "zero")


def surrogate_grad(v: np.ndarray, surrogate: str, slope: float) -> np.ndarray:
    """The surrogate for dH/dv at v = u - threshold."""
    if surrogate == "fast_sigmoid":
        return 1.0 / (1.0 + slope * np.abs(v)) ** 2
    if surrogate == "arctan":
        return (slope / 2.0) / (1.0 + (np.pi * slope * v / 2.0) ** 2)
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")


def surrogate_step(v: np.ndarray, surrogate: str, slope: float) -> np.ndarray:
    """The smooth function whose derivative is ``surrogate_grad``: v / (1 + k |v|) for the fast
    sigmoid (a ramp from -1/k to 1/k, not a step in [0, 1]; only its slope matters) and
    1/2 + arctan(pi k v / 2) / pi for arctan (a step that tends to H as k grows)."""
    if surrogate == "fast_sigmoid":
        return v / (1.0 + slope * np.abs(v))
    if surrogate == "arctan":
        return 0.5 + np.arctan(np.pi * slope * v / 2.0) / np.pi
    raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")


def _check_options(beta, threshold, steps, surrogate, slope, reset) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"lif: steps must be a positive integer, got {steps!r}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"lif: beta (the membrane decay) must be in [0, 1], got {beta}")
    if not threshold > 0:
        raise ValueError(f"lif: threshold must be > 0, got {threshold}")
    if surrogate not in SURROGATES:
        raise ValueError(f"lif: surrogate must be one of {SURROGATES}, got {surrogate!r}")
    if not slope > 0:
        raise ValueError(f"lif: slope must be > 0, got {slope}")
    if reset not in RESETS:
        raise ValueError(f"lif: reset must be one of {RESETS}, got {reset!r}")


def lif_forward(x: np.ndarray, *, beta: float = 0.5, threshold: float = 1.0, steps: int = 4,
                surrogate: str = "arctan", slope: float = 2.0, reset: str = "subtract",
                detach_reset: bool = True, smooth: bool = False):
    """x: (...) the pre-activation, fed at each of ``steps`` steps -> out: (...) mean firing rate.

    ``smooth=True`` fires ``surrogate_step(u - threshold)`` instead of H(u - threshold) (for the
    gradient check). The cache holds u and s of every step, (T, ...) each.
    """
    _check_options(beta, threshold, steps, surrogate, slope, reset)
    dtype = x.dtype
    u = np.zeros((steps, *x.shape), dtype=dtype)
    s = np.zeros((steps, *x.shape), dtype=dtype)
    u_prev = np.zeros_like(x)
    s_prev = np.zeros_like(x)
    for t in range(steps):
        if reset == "subtract":
            u[t] = beta * u_prev + x - threshold * s_prev
        else:
            u[t] = beta * u_prev * (1.0 - s_prev) + x
        v = u[t] - threshold
        s[t] = surrogate_step(v, surrogate, slope) if smooth else (v >= 0)
        u_prev, s_prev = u[t], s[t]
    out = s.mean(axis=0, dtype=dtype)
    options = dict(beta=beta, threshold=threshold, surrogate=surrogate, slope=slope,
                   reset=reset, detach_reset=detach_reset)
    return out, (u, s, options)


def lif_backward(dout: np.ndarray, cache):
    """-> (dx,). Backward through time, with g_t = dL/du_t:
    ds_t = dout / T + [not detached] g_{t+1} du_{t+1}/ds_t   (-threshold, or -beta u_t for "zero")
    g_t  = ds_t surrogate(u_t - threshold) + g_{t+1} du_{t+1}/du_t   (beta, or beta (1 - s_t))
    dx   = sum_t g_t   (x enters every step)."""
    u, s, options = cache
    beta, threshold = options["beta"], options["threshold"]
    zero_reset = options["reset"] == "zero"
    steps = u.shape[0]
    dx = np.zeros_like(dout)
    g_next = np.zeros_like(dout)
    for t in reversed(range(steps)):
        ds = dout / steps
        if not options["detach_reset"] and t + 1 < steps:
            ds = ds - g_next * (beta * u[t] if zero_reset else threshold)
        g = ds * surrogate_grad(u[t] - threshold, options["surrogate"], options["slope"])
        if t + 1 < steps:
            g = g + g_next * (beta * (1.0 - s[t]) if zero_reset else beta)
        dx += g
        g_next = g
    return (dx.astype(dout.dtype, copy=False),)

