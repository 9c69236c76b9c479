import math

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import away_from_zero, seeds, shapes
from phase_01_nn.activations import (
    GELU,
    gelu_backward,
    gelu_forward,
    relu_backward,
    relu_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)

SMOOTH = [(sigmoid_forward, sigmoid_backward), (tanh_forward, tanh_backward)]


@pytest.mark.parametrize(("forward", "backward"), SMOOTH, ids=["sigmoid", "tanh"])
@given(shape=shapes(), seed=seeds())
def test_smooth_gradients(forward, backward, shape, seed):
    # Unit scale: where every input is deep in saturation (|x| > 4) the derivative is ~1e-3 of
    # the output, and the central difference's rounding error (~1e-10) becomes a visible share.
    x = np.random.default_rng(seed).standard_normal(shape)
    check_gradients(forward, backward, x)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@given(shape=shapes(), seed=seeds())
def test_gelu_gradients(approximate, shape, seed):
    x = 2.0 * np.random.default_rng(seed).standard_normal(shape)
    check_gradients(gelu_forward, gelu_backward, x, approximate=approximate)


@given(shape=shapes(), seed=seeds())
def test_relu_gradient_away_from_the_kink(shape, seed):
    x = away_from_zero(np.random.default_rng(seed), shape)
    check_gradients(relu_forward, relu_backward, x, tol=1e-5)


def test_relu_subgradient_at_zero_is_zero():
    _, cache = relu_forward(np.array([0.0, -1.0, 2.0]))
    np.testing.assert_array_equal(relu_backward(np.ones(3), cache)[0], [0.0, 0.0, 1.0])


def test_sigmoid_does_not_overflow():
    s = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


def test_gelu_values():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    exact, _ = gelu_forward(x)
    expected = [v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x]
    np.testing.assert_allclose(exact, expected, rtol=1e-15)
    approx, _ = gelu_forward(x, approximate="tanh")
    np.testing.assert_allclose(approx, exact, atol=2e-3)  # the tanh form is close, not equal
    assert not np.allclose(approx, exact, atol=1e-6)


def test_unknown_gelu_approximation_fails():
    with pytest.raises(ValueError, match="unknown GELU approximation 'fast'"):
        gelu_forward(np.zeros(2), approximate="fast")
    with pytest.raises(ValueError, match="unknown GELU approximation"):
        GELU("fast")


@pytest.mark.parametrize("forward", [sigmoid_forward, tanh_forward, relu_forward, gelu_forward])
def test_float32_preserved(forward):
    assert forward(np.ones(3, dtype=np.float32))[0].dtype == np.float32
