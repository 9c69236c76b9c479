"""The gradient checker must pass correct backwards and catch wrong ones."""

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import (
    ROUNDING_MARGIN,
    check_gradients,
    numerical_gradient,
    relative_error,
    rounding_floor,
    upstream_rng,
)
from phase_00_math.strategies import seeds, sizes


def matmul_forward(x, w):
    return x @ w, (x, w)


def matmul_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout


def matmul_backward_transposed_weight(dout, cache):
    x, w = cache
    return dout @ w.T, (x.T @ dout).T  # planted bug: dW transposed (square W hides the shape)


def square_forward(x):
    return x**2, x


def square_backward_missing_two(dout, x):
    return (dout * x,)  # planted bug: d(x^2)/dx is 2x


def bias_forward(x, b):
    return x + b, None


def bias_backward(dout, cache):
    return dout, dout.sum(axis=0)


def bias_backward_wrong_sum(dout, cache):
    return dout, dout.sum(axis=1)  # planted bug: sums over features, not the batch


def test_numerical_gradient_of_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = numerical_gradient(lambda v: np.sum(np.sin(v) * v), x)
    np.testing.assert_allclose(grad, np.cos(x) * x + np.sin(x), rtol=1e-8)


def test_numerical_gradient_leaves_input_alone():
    x = np.arange(6.0).reshape(2, 3)
    before = x.copy()
    numerical_gradient(lambda v: float(np.sum(v**3)), x)
    np.testing.assert_array_equal(x, before)


def test_relative_error_scale():
    a = np.array([1.0, 2.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, np.zeros(2)) == 1.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


@given(n=sizes(), d=sizes(), m=sizes(), seed=seeds())
def test_passes_a_correct_backward(n, d, m, seed):
    rng = np.random.default_rng(seed)
    errors = check_gradients(
        matmul_forward, matmul_backward, rng.standard_normal((n, d)), rng.standard_normal((d, m)),
        names=["x", "w"], seed=seed,
    )
    assert set(errors) == {"x", "w"}
    assert max(errors.values()) < 1e-8


def test_fails_on_transposed_weight_gradient():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    with pytest.raises(AssertionError, match=r"'w'|w: relative error"):
        check_gradients(
            matmul_forward, matmul_backward_transposed_weight, x, w, names=["x", "w"]
        )


def test_fails_on_missing_factor_of_two():
    x = np.random.default_rng(1).standard_normal((3, 4))
    with pytest.raises(AssertionError, match=r"x: relative error 3\.3"):
        check_gradients(square_forward, square_backward_missing_two, x, names=["x"])


def test_fails_on_wrong_broadcast_sum():
    rng = np.random.default_rng(2)
    x, b = rng.standard_normal((3, 3)), rng.standard_normal(3)
    with pytest.raises(AssertionError, match="b: relative error"):
        check_gradients(bias_forward, bias_backward_wrong_sum, x, b, names=["x", "b"])


def offset_square_forward(x, *, offset, scale):
    return offset + scale * x**2, x


def offset_square_backward(dout, x, scale):
    return (2.0 * scale * x * dout,)


def test_a_gradient_below_rounding_noise_passes_and_the_floor_is_honest():
    # L = sum((1000 + 1e-7 x^2) dout): each evaluation of L rounds at about eps * 1000 * n, so
    # each central difference carries noise near 1e-7, as large as the true gradient. The
    # relative error of a perfect backward is then 0.24: noise, not a verdict.
    x = np.random.default_rng(6).standard_normal((2, 3))
    options = dict(offset=1000.0, scale=1e-7)
    errors = check_gradients(
        lambda v: offset_square_forward(v, **options),
        lambda dout, v: offset_square_backward(dout, v, options["scale"]),
        x, names=["x"],
    )
    assert errors["x"] > 1e-2  # the relative error alone would have failed it
    # The floor must bound the noise actually measured, with the margin it claims.
    dout = upstream_rng(0).standard_normal(x.shape)
    out, _ = offset_square_forward(x, **options)
    numeric = numerical_gradient(lambda v: float(np.sum(offset_square_forward(v, **options)[0]
                                                        * dout)), x)
    noise = np.linalg.norm(numeric - 2e-7 * x * dout)
    floor = rounding_floor(float(np.sum(np.abs(out) * np.abs(dout))), x.size)
    assert 0.0 < noise <= floor / ROUNDING_MARGIN


def test_the_floor_does_not_hide_a_wrong_gradient_of_measurable_size():
    # The same large offset, but a gradient of order 1: a missing factor of 2 is caught, and
    # the message gives the difference beside the floor.
    x = np.random.default_rng(7).standard_normal((2, 3))
    with pytest.raises(AssertionError, match=r"x: relative error 3\.3.*rounding floor"):
        check_gradients(
            lambda v: offset_square_forward(v, offset=1000.0, scale=1.0),
            lambda dout, v: offset_square_backward(dout, v, 0.5),
            x, names=["x"],
        )


def test_reports_every_argument_within_tolerance():
    rng = np.random.default_rng(3)
    errors = check_gradients(
        bias_forward, bias_backward, rng.standard_normal((2, 3)), rng.standard_normal(3)
    )
    assert set(errors) == {"arg0", "arg1"}


def test_fails_on_wrong_gradient_shape():
    def backward(dout, cache):
        return dout, dout  # db has the batch dimension still in it

    rng = np.random.default_rng(4)
    with pytest.raises(AssertionError, match="shape"):
        check_gradients(bias_forward, backward, rng.standard_normal((2, 3)), rng.standard_normal(3))


def test_fails_when_forward_mutates_its_input():
    def forward(x):
        x *= 2.0
        return x.copy(), None

    def backward(dout, cache):
        return (2.0 * dout,)

    with pytest.raises(AssertionError, match="mutated"):
        check_gradients(forward, backward, np.ones(3))


def test_fails_on_wrong_number_of_gradients():
    rng = np.random.default_rng(5)
    with pytest.raises(AssertionError, match="returned 1 gradients for 2"):
        check_gradients(
            bias_forward, lambda dout, cache: (dout,), rng.standard_normal((2, 2)),
            rng.standard_normal(2),
        )


def test_none_argument_expects_none_gradient():
    def forward(x, b):
        return (x if b is None else x + b), None

    def backward(dout, cache):
        return dout, None

    errors = check_gradients(forward, backward, np.ones((2, 2)), None, names=["x", "b"])
    assert set(errors) == {"x"}


def test_options_pass_through():
    def forward(x, *, scale):
        return x * scale, scale

    def backward(dout, scale):
        return (dout * scale,)

    check_gradients(forward, backward, np.ones(3), scale=3.0)
    with pytest.raises(AssertionError):
        check_gradients(forward, lambda dout, scale: (dout,), np.ones(3), scale=3.0)


def test_tuple_outputs_get_tuple_upstream_gradients():
    def forward(x):
        return (x * 2.0, x**2), x

    def backward(douts, x):
        d_double, d_square = douts
        return (2.0 * d_double + 2.0 * x * d_square,)

    check_gradients(forward, backward, np.random.default_rng(6).standard_normal(4))


def test_upstream_gradient_is_not_the_inputs_own_stream():
    # If dout were drawn from default_rng(seed) like the test's x, then dout == x, dW = x^T x
    # would be symmetric and a transposed dW would pass.
    x = np.random.default_rng(0).standard_normal((3, 3))
    assert not np.allclose(upstream_rng(0).standard_normal((3, 3)), x)
