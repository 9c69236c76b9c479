import numpy as np
import pytest

from phase_01_nn.activations import relu_forward, tanh_forward
from phase_01_nn.initialization import (
    gain,
    kaiming_normal,
    kaiming_uniform,
    xavier_normal,
    xavier_uniform,
)

DEPTH, WIDTH = 30, 256


def _std_after_stack(init, activation, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((500, WIDTH))
    for _ in range(DEPTH):
        h, _ = activation(h @ init(rng))
    return float(h.std())


def test_kaiming_keeps_relu_activations_alive():
    std = _std_after_stack(lambda r: kaiming_normal(r, (WIDTH, WIDTH), "relu", np.float64),
                           relu_forward)
    assert 0.4 < std < 2.5
    naive = _std_after_stack(lambda r: 0.01 * r.standard_normal((WIDTH, WIDTH)), relu_forward)
    assert naive < 1e-20  # the signal dies: the reason initialisation matters


def test_xavier_with_tanh_gain_keeps_tanh_activations_alive():
    std = _std_after_stack(
        lambda r: xavier_normal(r, (WIDTH, WIDTH), gain("tanh"), np.float64), tanh_forward)
    assert 0.2 < std < 1.0
    too_small = _std_after_stack(
        lambda r: xavier_normal(r, (WIDTH, WIDTH), 0.5, np.float64), tanh_forward)
    assert too_small < 1e-3


@pytest.mark.parametrize(
    ("init", "expected_var"),
    [
        (lambda r: xavier_uniform(r, (300, 200), dtype=np.float64), 2 / 500),
        (lambda r: xavier_normal(r, (300, 200), dtype=np.float64), 2 / 500),
        (lambda r: kaiming_uniform(r, (300, 200), dtype=np.float64), 2 / 300),
        (lambda r: kaiming_normal(r, (300, 200), dtype=np.float64), 2 / 300),
    ],
)
def test_variances(init, expected_var):
    w = init(np.random.default_rng(0))
    assert w.shape == (300, 200)
    assert abs(w.var() / expected_var - 1) < 0.03


def test_errors():
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        gain("swish")
    with pytest.raises(ValueError, match=r"\(fan_in, fan_out\)"):
        xavier_uniform(np.random.default_rng(0), (3, 3, 3))
