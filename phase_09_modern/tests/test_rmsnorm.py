import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_04_attention.attention import scaled_dot_product_attention_forward
from phase_09_modern.ops.rmsnorm import (
    qk_norm_attention_backward,
    qk_norm_attention_forward,
    rms_norm_backward,
    rms_norm_forward,
)


@given(lead=st.lists(sizes(1, 3), min_size=1, max_size=2), c=sizes(2, 6),
       with_gamma=st.booleans(), seed=seeds())
def test_rms_norm_gradients(lead, c, with_gamma, seed):
    # C >= 2: with one feature y = x / sqrt(x^2 + eps) is sign(x) to 1e-6 and its gradient
    # (eps / |x|^3) is too small for central differences to measure to 1e-7.
    rng = np.random.default_rng(seed)
    gamma = rng.standard_normal(c) if with_gamma else None
    check_gradients(rms_norm_forward, rms_norm_backward, rng.standard_normal((*lead, c)),
                    gamma, names=["x", "gamma"])


@given(lead=st.lists(sizes(1, 3), min_size=1, max_size=2), c=sizes(1, 8),
       scale=st.floats(1e-3, 1e3), seed=seeds())
def test_rms_norm_is_scale_invariant(lead, c, scale, seed):
    """With eps = 0, rms(a x) = rms(x) for every a > 0; per token, not per batch."""
    rng = np.random.default_rng(seed)
    x, gamma = rng.standard_normal((*lead, c)), rng.standard_normal(c)
    per_token = np.exp(rng.uniform(-3, 3, size=(*lead, 1)))
    y, _ = rms_norm_forward(x, gamma, eps=0.0)
    y_scaled, _ = rms_norm_forward(scale * per_token * x, gamma, eps=0.0)
    np.testing.assert_allclose(y_scaled, y, rtol=1e-13, atol=1e-14)


def test_rms_norm_output_has_unit_rms_and_keeps_dtype():
    x = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32) * 7.0
    y, _ = rms_norm_forward(x, None, eps=0.0)
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.sqrt(np.mean(y * y, axis=-1)), 1.0, rtol=1e-6)
    assert not np.allclose(y.mean(axis=-1), 0.0)  # it does not centre, unlike layer norm


@given(b=sizes(1, 2), h=sizes(1, 3), t=sizes(1, 4), d=sizes(2, 4), causal=st.booleans(),
       seed=seeds())
# A tiny causal case whose dq (norm 4.8e-6) has a relative error of 1.6e-5 from rounding alone
# (phase 0 notes, section 3.4). The check must pass it.
@example(b=1, h=1, t=2, d=2, causal=True, seed=2050)
def test_qk_norm_attention_gradients(b, h, t, d, causal, seed):
    # D >= 2 for the reason given in test_rms_norm_gradients
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((b, h, t, d)) for _ in range(3))
    check_gradients(qk_norm_attention_forward, qk_norm_attention_backward, q, k, v,
                    1.0 + 0.3 * rng.standard_normal(d), 1.0 + 0.3 * rng.standard_normal(d),
                    causal=causal, names=["q", "k", "v", "gamma_q", "gamma_k"])


def test_qk_norm_bounds_the_scores_where_plain_attention_saturates():
    """Queries and keys 100 times too large: plain attention becomes one-hot, QK-norm does not
    notice (each normalised vector has norm sqrt(D), so a score is at most sqrt(D))."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 6, 8)) for _ in range(3))
    ones = np.ones(8)
    y_small, _ = qk_norm_attention_forward(q, k, v, ones, ones, eps=0.0)
    y_large, cache = qk_norm_attention_forward(100 * q, 100 * k, v, ones, ones, eps=0.0)
    np.testing.assert_allclose(y_large, y_small, rtol=1e-12)
    assert cache[2].weights.max() < 0.9
    _, plain = scaled_dot_product_attention_forward(100 * q, 100 * k, v)
    assert plain.weights.max() > 0.999


def test_bad_gamma_is_named():
    with pytest.raises(ValueError, match="gamma"):
        rms_norm_forward(np.zeros((2, 3)), np.ones(4))
