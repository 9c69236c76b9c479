import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_04_attention.attention import scaled_dot_product_attention_forward
from phase_09_modern.ops.sliding_window import (
    RollingKVCache,
    sliding_window_attention_backward,
    sliding_window_attention_forward,
    sliding_window_mask,
)


def _qkv(rng, b, h, t_q, t_k, d):
    return (rng.standard_normal((b, h, t_q, d)), rng.standard_normal((b, h, t_k, d)),
            rng.standard_normal((b, h, t_k, d)))


@given(b=sizes(1, 2), h=sizes(1, 2), t=sizes(2, 6), extra=sizes(0, 2), d=sizes(1, 3),
       window=sizes(1, 7), seed=seeds())
def test_sliding_window_gradients(b, h, t, extra, d, window, seed):
    rng = np.random.default_rng(seed)
    check_gradients(sliding_window_attention_forward, sliding_window_attention_backward,
                    *_qkv(rng, b, h, t, t + extra, d), window=window, names=["q", "k", "v"])


@given(t=sizes(1, 12), extra=sizes(0, 3), more=sizes(0, 5), seed=seeds())
def test_a_window_covering_the_context_is_causal_attention(t, extra, more, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, 2, 2, t, t + extra, 3)
    y, _ = sliding_window_attention_forward(q, k, v, window=t + extra + more)
    y_causal, _ = scaled_dot_product_attention_forward(q, k, v, causal=True)
    np.testing.assert_array_equal(y, y_causal)


@given(t=sizes(1, 12), window=sizes(1, 12))
def test_each_query_sees_exactly_min_window_keys(t, window):
    mask = sliding_window_mask(t, t, window)
    np.testing.assert_array_equal(mask.sum(axis=1), np.minimum(np.arange(1, t + 1), window))
    assert not np.any(np.triu(mask, k=1))  # never the future


def test_a_shorter_window_changes_the_output():
    rng = np.random.default_rng(0)
    q, k, v = _qkv(rng, 1, 1, 8, 8, 4)
    y2, _ = sliding_window_attention_forward(q, k, v, window=2)
    y8, _ = sliding_window_attention_forward(q, k, v, window=8)
    np.testing.assert_array_equal(y2[..., :2, :], y8[..., :2, :])
    assert not np.allclose(y2[..., 2:, :], y8[..., 2:, :])


@given(b=sizes(1, 2), h=sizes(1, 3), t=sizes(1, 20), window=sizes(1, 8), d=sizes(1, 4),
       dtype=st.sampled_from([np.float32, np.float64]), seed=seeds())
def test_rolling_cache_decode_equals_full_windowed_attention(b, h, t, window, d, dtype, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (a.astype(dtype) for a in _qkv(rng, b, h, t, t, d))
    full, _ = sliding_window_attention_forward(q, k, v, window=window)
    cache = RollingKVCache(b, h, window, d, dtype=dtype)
    steps = np.stack([cache.step(q[:, :, i], k[:, :, i], v[:, :, i]) for i in range(t)], axis=2)
    assert steps.dtype == dtype
    assert cache.keys.shape[2] == window  # memory fixed by the window, not the length
    np.testing.assert_allclose(steps, full, rtol=1e-12 if dtype == np.float64 else 2e-5,
                               atol=1e-12 if dtype == np.float64 else 2e-6)


def test_cache_errors_are_named():
    cache = RollingKVCache(1, 1, 2, 3)
    with pytest.raises(ValueError, match="before any key"):
        cache.attend(np.zeros((1, 1, 3), np.float32))
    with pytest.raises(ValueError, match="expected k"):
        cache.append(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="window"):
        sliding_window_mask(3, 3, 0)
