import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, shapes, sizes
from phase_01_nn.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward


# At least 3 rows: with 2, x_hat is +-1 whatever x is, so dx is of the order of eps and the
# relative error measures only rounding noise.
@given(lead=shapes(1, 2, min_side=3), d=sizes(), seed=seeds())
def test_training_mode_gradient(lead, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, d)) * 2.0 + 1.0
    check_gradients(batchnorm_forward, batchnorm_backward, x, 1.0 + rng.random(d),
                    rng.standard_normal(d), names=["x", "gamma", "beta"])


@given(n=sizes(), d=sizes(), seed=seeds())
def test_inference_mode_gradient(n, d, seed):
    rng = np.random.default_rng(seed)
    check_gradients(batchnorm_forward, batchnorm_backward, rng.standard_normal((n, d)),
                    rng.standard_normal(d), rng.standard_normal(d), training=False,
                    running_mean=rng.standard_normal(d), running_var=1.0 + rng.random(d))


def test_training_output_is_normalised():
    x = np.random.default_rng(0).standard_normal((64, 5)) * 3.0 + 7.0
    out, _ = batchnorm_forward(x, np.ones(5), np.zeros(5))
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1.0, rtol=1e-5)


def test_running_statistics_converge_and_are_used_in_eval():
    rng = np.random.default_rng(0)
    layer = BatchNorm(3, dtype=np.float64)
    for _ in range(200):
        layer.forward(rng.normal(5.0, 2.0, size=(256, 3)))
    np.testing.assert_allclose(layer.buffers["running_mean"], 5.0, atol=0.1)
    np.testing.assert_allclose(layer.buffers["running_var"], 4.0, atol=0.3)
    layer.eval()
    out = layer.forward(np.full((1, 3), 5.0))
    np.testing.assert_allclose(out, 0.0, atol=0.05)
    assert set(layer.state_dict()) == {"gamma", "beta", "running_mean", "running_var"}


def test_bad_calls_fail_clearly():
    with pytest.raises(ValueError, match="at least 2 rows"):
        batchnorm_forward(np.zeros((1, 3)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="needs running_mean"):
        batchnorm_forward(np.zeros((2, 3)), np.ones(3), np.zeros(3), training=False)
    with pytest.raises(ValueError, match=r"must be \(3,\)"):
        batchnorm_forward(np.zeros((2, 3)), np.ones(2), np.zeros(3))
