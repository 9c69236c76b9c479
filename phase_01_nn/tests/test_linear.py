import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, shapes, sizes
from phase_01_nn.linear import Linear, linear_backward, linear_forward, matmul_rows
from phase_01_nn.module import check_module_gradients


@given(lead=shapes(min_dims=1, max_dims=3), d=sizes(), m=sizes(), seed=seeds())
def test_gradient_over_any_leading_dims(lead, d, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, d))
    w, b = rng.standard_normal((d, m)), rng.standard_normal(m)
    errors = check_gradients(linear_forward, linear_backward, x, w, b, names=["x", "w", "b"])
    assert set(errors) == {"x", "w", "b"}


@given(n=sizes(), d=sizes(), m=sizes(), seed=seeds())
def test_gradient_without_bias(n, d, m, seed):
    rng = np.random.default_rng(seed)
    check_gradients(linear_forward, linear_backward, rng.standard_normal((n, d)),
                    rng.standard_normal((d, m)), None, names=["x", "w", "b"])


def test_forward_value():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    y, _ = linear_forward(x, w, np.array([0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(y, [[2.0, 5.0, 1.0]])


def test_wrong_shapes_fail_clearly():
    w = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"x has shape \(2, 5\), so 5 features.*expects 3"):
        linear_forward(np.zeros((2, 5)), w)
    with pytest.raises(ValueError, match=r"b has shape \(3,\); expected \(4,\)"):
        linear_forward(np.zeros((2, 3)), w, np.zeros(3))
    with pytest.raises(ValueError, match="w must be 2-D"):
        linear_forward(np.zeros((2, 3)), np.zeros(3))


def test_float32_in_float32_out():
    x = np.ones((2, 3), dtype=np.float32)
    y, cache = linear_forward(x, np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in linear_backward(np.ones_like(y), cache))


def test_module_gradients_and_accumulation():
    rng = np.random.default_rng(0)
    layer = Linear(4, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((5, 4))
    check_module_gradients(layer, x)
    layer.zero_grad()
    layer.forward(x)
    layer.backward(np.ones((5, 3)))
    once = layer.grads["w"].copy()
    layer.backward(np.ones((5, 3)))
    np.testing.assert_allclose(layer.grads["w"], 2 * once)
    layer.zero_grad()
    layer.backward(np.ones((5, 3)))
    np.testing.assert_array_equal(layer.grads["w"], once)


def test_unknown_init_fails():
    with pytest.raises(ValueError, match="unknown init 'orthogonal'"):
        Linear(2, 2, rng=np.random.default_rng(0), init="orthogonal")


@given(lead=shapes(min_dims=0, max_dims=3), d=sizes(), m=sizes(), seed=seeds())
def test_matmul_rows_is_matmul(lead, d, m, seed):
    """One product of all the rows gives a @ w for any leading dimensions (none included), and
    for a non-contiguous ``a`` (a transposed view, reshaped by a copy)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*lead, d))
    w = rng.standard_normal((d, m))
    np.testing.assert_allclose(matmul_rows(a, w), a @ w, rtol=1e-12, atol=1e-12)
    assert matmul_rows(a, w).shape == (*lead, m)
    if a.ndim >= 3:
        view = np.swapaxes(a, 0, 1)
        np.testing.assert_allclose(matmul_rows(view, w), view @ w, rtol=1e-12, atol=1e-12)
