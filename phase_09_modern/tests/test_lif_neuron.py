import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients, numerical_gradient, relative_error
from phase_00_math.strategies import seeds
from phase_06_torch_parity.harness import ParityCase, run_case
from phase_09_modern.ops.lif_neuron import (
    lif_backward,
    lif_forward,
    surrogate_grad,
    surrogate_step,
)
from phase_09_modern.ops.parity import CASES

options = st.fixed_dictionaries({
    "beta": st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    "threshold": st.sampled_from([0.5, 1.0]),
    "steps": st.integers(1, 8),
    "surrogate": st.sampled_from(["fast_sigmoid", "arctan"]),
    "slope": st.sampled_from([1.0, 2.0, 5.0]),
    "reset": st.sampled_from(["subtract", "zero"]),
})


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan"])
@pytest.mark.parametrize("slope", [1.0, 2.0, 25.0])
def test_each_surrogate_is_the_derivative_of_its_smooth_step(surrogate, slope):
    v = np.linspace(-2.0, 2.0, 41) + 0.013  # off 0, where the fast sigmoid's step has a kink
    numeric = numerical_gradient(lambda a: float(surrogate_step(a, surrogate, slope).sum()), v)
    assert relative_error(surrogate_grad(v, surrogate, slope), numeric) < 1e-7


@settings(max_examples=30)
@given(opts=options, seed=seeds())
def test_the_backward_is_the_gradient_of_the_smooth_twin(opts, seed):
    """With H replaced by the step whose derivative is the surrogate, the backward (same code,
    reset not detached) must be the exact gradient: a wrong surrogate, a missing path through
    time or a wrong reset derivative all show here."""
    x = np.random.default_rng(seed).standard_normal((3, 5))
    check_gradients(lif_forward, lif_backward, x, names=["x"], seed=seed, smooth=True,
                    detach_reset=False, **opts)


def _smooth_unroll_with_frozen_reset(x, frozen, *, beta, threshold, surrogate, slope, reset):
    """An independent loop: the smooth twin, its reset driven by the spikes ``frozen`` (T, ...)
    held constant; its finite-difference gradient is the detached-reset gradient."""
    u = np.zeros_like(x)
    total = np.zeros_like(x)
    for t in range(len(frozen)):
        fired = frozen[t - 1] if t else np.zeros_like(x)
        u = beta * u + x - threshold * fired if reset == "subtract" else \
            beta * u * (1.0 - fired) + x
        total = total + surrogate_step(u - threshold, surrogate, slope)
    return total / len(frozen)


@settings(max_examples=30)
@given(opts=options, seed=seeds())
def test_the_detached_reset_gradient_matches_a_frozen_reset(opts, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 5))
    dout = rng.standard_normal((3, 5))
    _, cache = lif_forward(x, smooth=True, detach_reset=True, **opts)
    (dx,) = lif_backward(dout, cache)
    frozen = cache[1]
    rest = {k: v for k, v in opts.items() if k != "steps"}
    numeric = numerical_gradient(
        lambda a: float((_smooth_unroll_with_frozen_reset(a, frozen, **rest) * dout).sum()), x)
    assert relative_error(dx, numeric) < 1e-7


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_detaching_the_reset_removes_a_path_that_exists_only_after_step_one(reset):
    x = np.array([2.5, 0.7])
    common = dict(beta=0.9, threshold=1.0, surrogate="arctan", slope=2.0, reset=reset)

    def grad(steps, detach):
        _, cache = lif_forward(x, steps=steps, detach_reset=detach, **common)
        return lif_backward(np.ones(2), cache)[0]

    assert np.all(np.abs(grad(4, False) - grad(4, True)) > 1e-4)
    np.testing.assert_array_equal(grad(1, False), grad(1, True))


@pytest.mark.parametrize("case", [c for c in CASES if c.name == "lif"], ids=["lif"])
@settings(max_examples=40)
@given(seed=seeds())
def test_lif_matches_the_torch_module_in_float64(case, seed):
    result = run_case(case, seed, np.float64)
    assert result.passed, (result.forward_error, result.grad_errors)


def test_a_backward_without_the_path_through_time_fails_parity():
    lif_case = next(c for c in CASES if c.name == "lif")

    def one_step_backward(dout, cache):
        u, _, o = cache
        grad = surrogate_grad(u - o["threshold"], o["surrogate"], o["slope"])
        return ((dout / len(u) * grad).sum(0),)  # forgets g_{t+1} du_{t+1}/du_t

    def make_inputs(rng):
        arrays, opts = lif_case.make_inputs(rng)
        return arrays, {**opts, "steps": 4, "beta": 0.9}

    broken = ParityCase("lif without time", lif_forward, one_step_backward,
                        lif_case.torch_reference, make_inputs)
    assert not run_case(broken, 5).passed
    assert run_case(ParityCase("lif", lif_forward, lif_backward, lif_case.torch_reference,
                               make_inputs), 5).passed


def test_spike_counts_on_hand_made_inputs():
    """beta = 1, threshold 1, subtract reset, T = 4: x = 0.6 charges 0.6, 1.2 (fire, 0.2),
    0.8, 1.4 (fire): 2 spikes; 0.3 fires once at step 4; 2.0 every step; -1 never."""
    x = np.array([0.6, 0.3, 2.0, -1.0])
    out, (u, s, _) = lif_forward(x, beta=1.0, threshold=1.0, steps=4)
    np.testing.assert_array_equal(s.sum(0), [2, 1, 4, 0])
    np.testing.assert_allclose(out, [0.5, 0.25, 1.0, 0.0])
    np.testing.assert_allclose(u[:, 0], [0.6, 1.2, 0.8, 1.4])
    out_zero, (u_zero, _, _) = lif_forward(x, beta=1.0, threshold=1.0, steps=4, reset="zero")
    np.testing.assert_allclose(u_zero[:, 0], [0.6, 1.2, 0.6, 1.2])  # the 0.2 excess is lost
    np.testing.assert_allclose(out_zero, [0.5, 0.25, 1.0, 0.0])


def test_the_leak_decides_whether_a_weak_input_ever_fires():
    x = np.array([0.4])  # with beta = 0.5 the potential tends to 0.8 < 1: never fires
    assert lif_forward(x, beta=0.5, threshold=1.0, steps=8)[0][0] == 0.0
    assert lif_forward(x, beta=1.0, threshold=1.0, steps=8)[0][0] == 3 / 8


@given(opts=options, seed=seeds())
def test_one_step_is_a_heaviside_whatever_the_leak_and_reset(opts, seed):
    x = np.random.default_rng(seed).standard_normal((2, 7))
    opts = {**opts, "steps": 1}
    out, cache = lif_forward(x, **opts)
    np.testing.assert_array_equal(out, (x >= opts["threshold"]).astype(float))
    (dx,) = lif_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, surrogate_grad(x - opts["threshold"], opts["surrogate"],
                                                  opts["slope"]), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_and_dtype_are_kept(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(dtype)
    out, cache = lif_forward(x, steps=3)
    (dx,) = lif_backward(np.ones_like(out), cache)
    assert out.shape == dx.shape == x.shape
    assert out.dtype == dx.dtype == dtype
    assert set(np.unique(out * 3)) <= {0.0, 1.0, 2.0, 3.0}


def test_the_input_is_not_mutated():
    x = np.array([0.5, 1.5])
    kept = x.copy()
    _, cache = lif_forward(x)
    lif_backward(np.ones(2), cache)
    np.testing.assert_array_equal(x, kept)


@pytest.mark.parametrize("bad, match", [({"steps": 0}, "steps"), ({"beta": 1.5}, "beta"),
                                        ({"threshold": 0.0}, "threshold"),
                                        ({"surrogate": "relu"}, "surrogate"),
                                        ({"slope": -1.0}, "slope"), ({"reset": "hard"}, "reset")])
def test_bad_options_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        lif_forward(np.zeros(3), **bad)
