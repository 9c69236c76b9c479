import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_04_attention.attention import scaled_dot_product_attention_forward
from phase_09_modern.ops.alibi import (
    alibi_attention_backward,
    alibi_attention_forward,
    alibi_bias,
    alibi_slopes,
)


def test_slopes_for_eight_heads_are_the_papers():
    np.testing.assert_array_equal(alibi_slopes(8), 2.0 ** -np.arange(1, 9))


def test_slopes_for_a_non_power_of_two():
    """6 heads: the 4 slopes of 4 heads (2^-2, 2^-4, 2^-6, 2^-8), then every other slope of 8
    heads (2^-1, 2^-3)."""
    np.testing.assert_allclose(alibi_slopes(6), 2.0 ** -np.array([2, 4, 6, 8, 1, 3]),
                               rtol=1e-15)


@given(n=sizes(1, 64))
def test_slopes_are_distinct_and_in_0_1(n):
    s = alibi_slopes(n)
    assert s.shape == (n,) and np.all((s > 0) & (s < 1)) and len(set(s)) == n


def test_bias_is_minus_slope_times_distance():
    # two heads: slopes 2^(-8/2) = 2^-4 and 2^-8
    bias = alibi_bias(2, 3, 3)
    np.testing.assert_array_equal(bias[0], -2.0**-4 * np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))
    np.testing.assert_array_equal(bias[1], -2.0**-8 * np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))


@given(b=sizes(1, 2), h=sizes(1, 3), t=sizes(2, 5), extra=sizes(0, 2), d=sizes(1, 3),
       causal=st.booleans(), seed=seeds())
def test_alibi_attention_gradients(b, h, t, extra, d, causal, seed):
    rng = np.random.default_rng(seed)
    check_gradients(alibi_attention_forward, alibi_attention_backward,
                    rng.standard_normal((b, h, t, d)), rng.standard_normal((b, h, t + extra, d)),
                    rng.standard_normal((b, h, t + extra, d)), causal=causal,
                    names=["q", "k", "v"])


def test_zero_queries_attend_by_distance_alone():
    """With q = 0 the scores are the biases: the weights decay geometrically with distance,
    e^(-m) per step, the recency prior ALiBi puts in place of position embeddings."""
    rng = np.random.default_rng(0)
    k, v = rng.standard_normal((1, 2, 5, 4)), rng.standard_normal((1, 2, 5, 4))
    _, cache = alibi_attention_forward(np.zeros((1, 2, 5, 4)), k, v)
    last_row = cache.weights[0, :, -1]
    ratios = last_row[:, 1:] / last_row[:, :-1]
    np.testing.assert_allclose(ratios, np.exp(alibi_slopes(2))[:, None] * np.ones((2, 4)),
                               rtol=1e-12)
    _, plain = scaled_dot_product_attention_forward(np.zeros((1, 2, 5, 4)), k, v, causal=True)
    np.testing.assert_allclose(plain.weights[0, :, -1], 0.2)
