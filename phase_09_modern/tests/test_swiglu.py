import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_09_modern.ops.swiglu import (
    init_swiglu,
    llama_hidden_width,
    swiglu_backward,
    swiglu_forward,
)


@given(lead=st.lists(sizes(1, 3), min_size=1, max_size=2), c=sizes(1, 5), f=sizes(1, 6),
       seed=seeds())
def test_swiglu_gradients(lead, c, f, seed):
    rng = np.random.default_rng(seed)
    check_gradients(swiglu_forward, swiglu_backward, rng.standard_normal((*lead, c)),
                    rng.standard_normal((c, f)), rng.standard_normal((c, f)),
                    rng.standard_normal((f, c)), names=["x", "w1", "w3", "w2"])


@given(d=sizes(1, 64), d_ff=sizes(1, 200))
def test_parameter_count_is_three_d_dff(d, d_ff):
    params = init_swiglu(np.random.default_rng(0), d, d_ff)
    assert sum(p.size for p in params.values()) == 3 * d * d_ff
    y, _ = swiglu_forward(np.ones((2, d), np.float32), params["w1"], params["w3"], params["w2"])
    assert y.shape == (2, d) and y.dtype == np.float32


def test_llama_width_keeps_the_gelu_mlp_parameter_count():
    assert llama_hidden_width(4096) == 11008  # LLaMA 7B's published width
    for d in (64, 512, 4096):
        f = llama_hidden_width(d, multiple_of=1)
        assert abs(3 * d * f - 2 * d * 4 * d) <= 3 * d  # 8 d^2 up to rounding F down


def test_the_gate_is_silu_times_the_linear_branch():
    x = np.array([[1.0, -2.0]])
    w1, w3, w2 = np.eye(2), 2.0 * np.eye(2), np.eye(2)
    y, _ = swiglu_forward(x, w1, w3, w2)
    silu = x / (1.0 + np.exp(-x))
    np.testing.assert_allclose(y, silu * 2.0 * x, rtol=1e-15)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="w2"):
        swiglu_forward(np.zeros((1, 2)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))
