import math

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.softmax import (
    log_softmax,
    log_softmax_backward,
    log_softmax_forward,
    logsumexp,
    softmax,
    softmax_backward,
    softmax_forward,
)
from phase_00_math.strategies import seeds, shapes


def test_logsumexp_matches_definition_on_small_values():
    x = np.array([[0.1, -1.0, 2.0], [3.0, 3.0, 3.0]])
    np.testing.assert_allclose(logsumexp(x), np.log(np.exp(x).sum(-1)), rtol=1e-14)
    np.testing.assert_allclose(logsumexp(x, axis=0), np.log(np.exp(x).sum(0)), rtol=1e-14)


def test_no_overflow_at_large_logits():
    x = np.array([1e4, 1e4 - 1.0, -1e4])
    assert np.isclose(logsumexp(x), 1e4 + math.log(1.0 + math.exp(-1.0)), rtol=1e-15)
    p = softmax(x)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1)), 0])
    np.testing.assert_allclose(log_softmax(x)[2], -2e4 - math.log(1 + math.exp(-1)), rtol=1e-15)


def test_logsumexp_of_all_minus_infinity_is_minus_infinity():
    assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf


@given(shape=shapes(), seed=seeds())
def test_softmax_is_a_distribution_and_shift_invariant(shape, seed):
    rng = np.random.default_rng(seed)
    x = 5.0 * rng.standard_normal(shape)
    p = softmax(x)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(softmax(x + 123.0), p, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.exp(log_softmax(x)), p, rtol=1e-12, atol=1e-300)


def test_float32_stays_float32():
    x = np.ones((2, 3), dtype=np.float32)
    assert softmax(x).dtype == np.float32
    assert log_softmax(x).dtype == np.float32
    assert softmax_forward(x)[0].dtype == np.float32


@given(shape=shapes(), seed=seeds())
def test_softmax_gradient(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    check_gradients(softmax_forward, softmax_backward, x, seed=seed)


@given(shape=shapes(min_dims=2), seed=seeds())
def test_softmax_gradient_along_first_axis(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    check_gradients(softmax_forward, softmax_backward, x, axis=0)


@given(shape=shapes(), seed=seeds())
def test_log_softmax_gradient(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    check_gradients(log_softmax_forward, log_softmax_backward, x, seed=seed)


def test_softmax_backward_equals_explicit_jacobian():
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal(5), rng.standard_normal(5)
    p, cache = softmax_forward(x)
    jacobian = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(softmax_backward(dout, cache)[0], jacobian.T @ dout, rtol=1e-12)


@pytest.mark.parametrize("big", [1e4, -1e4])
def test_gradients_finite_at_extreme_logits(big):
    x = np.array([big, 0.0, 1.0])
    p, cache = softmax_forward(x)
    (dx,) = softmax_backward(np.ones(3), cache)
    assert np.all(np.isfinite(dx))


def test_log_softmax_keeps_a_tiny_loss_in_float32():
    # -log p of the winning class is ~6.1e-7 here; x - (m + lse) would round it to the float32
    # spacing near 9 (~1e-6). (x - m) - lse keeps it to the precision of the float32 sum.
    x = np.array([-6.93337352, 9.14873991, -5.34210253])
    exact = -log_softmax(x)[1]
    tiny = -log_softmax(x.astype(np.float32))[1]
    assert tiny.dtype == np.float32
    assert abs(tiny - exact) / exact < 0.05


def test_log_softmax_keeps_the_digits_of_a_confident_prediction():
    """The right class's log-probability is -log(1 + r), r the other classes' exp(x - max):
    taken as log1p(r) it keeps r's digits; log(1 + r) rounded r to 1e-16 first, an error of
    4e-5 relative in a loss of 1e-6 (a gradient check of the cross-entropy failed on it)."""
    x = np.array([6.12275736, -7.66699509])
    r = math.exp(x[1] - x[0])
    assert math.isclose(-log_softmax(x)[0], math.log1p(r), rel_tol=1e-14)
    rows = np.array([[0.0, -np.inf], [-np.inf, -np.inf], [np.nan, 1.0], [1.0, np.inf]])
    out = log_softmax(rows)
    np.testing.assert_array_equal(out[0], [0.0, -np.inf])
    assert np.isnan(out[1]).all() and np.isnan(out[2]).all()  # as the plain formula gives
    assert out[3, 0] == -np.inf
