import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, shapes, sizes
from phase_01_nn.module import check_module_gradients
from phase_05_transformer_numpy.layer_norm import (
    LayerNorm,
    layer_norm_backward,
    layer_norm_forward,
)


# C >= 3: with two features xhat is always (-1, 1) or (1, -1), so dx is ~0 (only eps moves it)
# and the relative error measures rounding noise, not the backward.
@given(lead=shapes(min_dims=1, max_dims=3), c=sizes(3, 6), seed=seeds())
def test_gradient(lead, c, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, c)) * 2 + 1
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    errors = check_gradients(layer_norm_forward, layer_norm_backward, x, gamma, beta,
                             names=["x", "gamma", "beta"])
    assert set(errors) == {"x", "gamma", "beta"}


@given(n=sizes(), c=sizes(3, 6), seed=seeds())
def test_gradient_without_beta(n, c, seed):
    rng = np.random.default_rng(seed)
    check_gradients(layer_norm_forward, layer_norm_backward, rng.standard_normal((n, c)),
                    rng.standard_normal(c), None, names=["x", "gamma", "beta"])


@given(lead=shapes(min_dims=1, max_dims=2), c=sizes(2, 8), seed=seeds())
def test_output_has_zero_mean_unit_variance_before_the_affine(lead, c, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, c)) * 3 - 2
    y, _ = layer_norm_forward(x, np.ones(c), np.zeros(c), eps=0.0)
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1, rtol=1e-10)


def test_float32_stays_float32_and_shapes_are_checked():
    x = np.ones((2, 3, 4), np.float32)
    y, cache = layer_norm_forward(x, np.ones(4, np.float32), np.zeros(4, np.float32))
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer_norm_backward(np.ones_like(y), cache))
    with pytest.raises(ValueError, match=r"gamma has shape \(3,\); expected \(4,\)"):
        layer_norm_forward(x, np.ones(3, np.float32))


def test_module():
    rng = np.random.default_rng(0)
    norm = LayerNorm(5, dtype=np.float64)
    norm.params["gamma"][:] = rng.standard_normal(5)
    errors = check_module_gradients(norm, rng.standard_normal((2, 3, 5)))
    assert set(errors) == {"input", "gamma", "beta"}
    assert set(LayerNorm(5, bias=False).params) == {"gamma"}
