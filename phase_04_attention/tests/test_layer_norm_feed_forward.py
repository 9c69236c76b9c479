"""Layer norm and the feed-forward: gradient checks in float64, properties, dtype, errors."""

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, shapes, sizes
from phase_01_nn.module import check_module_gradients
from phase_04_attention import layer_norm
from phase_04_attention.feed_forward import (
    FeedForward,
    feed_forward_backward,
    feed_forward_forward,
)
from phase_04_attention.layer_norm import LayerNorm, layer_norm_backward, layer_norm_forward

# C >= 3: with C = 1 the output is beta whatever x is (dx = 0, so the relative error compares
# 0 with central-difference noise), and with C = 2 x_hat is +-1, so dx is O(eps) and again noise.
features = sizes(3, 6)


@given(lead=shapes(min_dims=1, max_dims=3), c=features, seed=seeds())
def test_layer_norm_gradients(lead, c, seed):
    rng = np.random.default_rng(seed)
    errors = check_gradients(layer_norm_forward, layer_norm_backward,
                             rng.standard_normal((*lead, c)), 1.0 + 0.5 * rng.standard_normal(c),
                             rng.standard_normal(c), names=["x", "gamma", "beta"])
    assert set(errors) == {"x", "gamma", "beta"}


@given(n=sizes(1, 4), c=features, seed=seeds())
def test_layer_norm_gradients_without_affine(n, c, seed):
    x = np.random.default_rng(seed).standard_normal((n, c))
    check_gradients(layer_norm_forward, layer_norm_backward, x, None, None,
                    names=["x", "gamma", "beta"])


@given(lead=shapes(min_dims=1, max_dims=3), c=features, seed=seeds())
def test_layer_norm_rows_have_zero_mean_unit_variance_and_ignore_shift_and_scale(lead, c, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, c))
    gamma, beta = np.ones(c), np.zeros(c)
    y, _ = layer_norm_forward(x, gamma, beta, eps=0.0)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-10)
    shift, scale = rng.standard_normal((*lead, 1)), np.exp(rng.standard_normal((*lead, 1)))
    np.testing.assert_allclose(layer_norm_forward(scale * x + shift, gamma, beta, eps=0.0)[0], y,
                               atol=1e-10)


def test_layer_norm_keeps_float32_and_matches_the_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    gamma, beta = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(
        np.float32)
    y, cache = layer_norm_forward(x, gamma, beta)
    grads = layer_norm_backward(np.ones_like(y), cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    x64 = x.astype(np.float64)
    expected = gamma * (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True)
                                                                     + 1e-5) + beta
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_layer_norm_module_gradients():
    module = LayerNorm(4, dtype=np.float64)
    rng = np.random.default_rng(0)
    module.params["gamma"][...] = rng.standard_normal(4)
    module.params["beta"][...] = rng.standard_normal(4)
    check_module_gradients(module, rng.standard_normal((2, 3, 4)))


def test_layer_norm_shape_errors():
    with pytest.raises(ValueError, match=r"gamma has shape \(3,\); expected \(4,\)"):
        layer_norm_forward(np.zeros((2, 4)), np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"x must be \(\.\.\., C\)"):
        layer_norm_forward(np.zeros(()), None, None)


@given(lead=shapes(min_dims=1, max_dims=3), c=sizes(1, 4), f=sizes(1, 6), seed=seeds())
def test_feed_forward_gradients(lead, c, f, seed):
    # ReLU has a kink at 0: a pre-activation within h = 1e-6 of it happens with probability
    # about 1e-6 per element for normal draws, so the kink tolerance of the guide is enough.
    rng = np.random.default_rng(seed)
    check_gradients(feed_forward_forward, feed_forward_backward, rng.standard_normal((*lead, c)),
                    rng.standard_normal((c, f)), rng.standard_normal(f),
                    rng.standard_normal((f, c)), rng.standard_normal(c), tol=1e-5,
                    names=["x", "w_1", "b_1", "w_2", "b_2"])


def test_feed_forward_without_biases_and_per_token():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4))
    w_1, w_2 = rng.standard_normal((4, 8)), rng.standard_normal((8, 4))
    check_gradients(feed_forward_forward, feed_forward_backward, x, w_1, None, w_2, None,
                    tol=1e-5, names=["x", "w_1", "b_1", "w_2", "b_2"])
    y, _ = feed_forward_forward(x, w_1, None, w_2, None)
    changed = x.copy()
    changed[:, 2] += 1.0
    np.testing.assert_array_equal(feed_forward_forward(changed, w_1, None, w_2, None)[0][:, :2],
                                  y[:, :2])


def test_feed_forward_module_gradients():
    module = FeedForward(3, rng=np.random.default_rng(0), dtype=np.float64)
    assert module.params["w_1"].shape == (3, 12)
    check_module_gradients(module, np.random.default_rng(1).standard_normal((2, 4, 3)), tol=1e-5)


@pytest.mark.parametrize(("params", "keeps_output"), [
    ("gamma and beta", True), ("gamma", True), ("neither", True),
    ("beta large beside gamma", False), ("a zero in gamma", False)])
@pytest.mark.parametrize("shape", [(3, 7, 16), (5, 384), (1, 1)])
def test_the_fused_float32_layer_norm_agrees_with_the_numpy_lines(params, keeps_output, shape,
                                                                   monkeypatch):
    """float32 takes the numba loops over rows (sums in float64), float64 and ``FUSED = False``
    the NumPy lines; output and gradients agree to float32's rounding (measured on
    (8, 256, 384): 1.9e-7, 1.3e-7 and 1.1e-6 of the largest value, dgamma's sum taken in
    float64 by the loop). The cache keeps the output instead of x_hat where x_hat comes back
    from it to float32's rounding, and x_hat where it would not (a large beta / gamma, a 0)."""
    rng = np.random.default_rng(1)
    x = (3.0 * rng.standard_normal(shape) + 1.0).astype(np.float32)
    dout = rng.standard_normal(shape).astype(np.float32)
    c = shape[-1]
    gamma = None if params == "neither" else (1.0 + rng.random(c)).astype(np.float32)
    beta = None if params in ("gamma", "neither") else rng.standard_normal(c).astype(np.float32)
    if params == "beta large beside gamma":
        beta = 10.0 * gamma
    if params == "a zero in gamma":
        gamma[0] = 0.0
    results = []
    for fused in (True, False):
        monkeypatch.setattr(layer_norm, "FUSED", fused)
        y, cache = layer_norm_forward(x, gamma, beta)
        if fused:
            assert isinstance(cache[0], layer_norm.FromOutput) == keeps_output
            assert cache[0].y is y if keeps_output else cache[0].dtype == np.float32
        results.append((y, cache[1], *layer_norm_backward(dout, cache)))
    for fast, plain in zip(*results, strict=True):
        if plain is None:
            assert fast is None
            continue
        assert fast.dtype == np.float32 and fast.shape == plain.shape
        np.testing.assert_allclose(fast, plain, rtol=0, atol=3e-6 * max(1.0, np.abs(plain).max()))
