"""Positional encodings, the feed-forward network, label smoothing and the inverse-sqrt schedule."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, shapes, sizes
from phase_01_nn.losses import softmax_cross_entropy_forward
from phase_01_nn.module import check_module_gradients
from phase_05_transformer_numpy import feed_forward
from phase_05_transformer_numpy.feed_forward import (
    FeedForward,
    feed_forward_backward,
    feed_forward_forward,
)
from phase_05_transformer_numpy.inverse_sqrt_schedule import inverse_sqrt_lr
from phase_05_transformer_numpy.label_smoothing import (
    label_smoothing_cross_entropy_backward,
    label_smoothing_cross_entropy_forward,
)
from phase_05_transformer_numpy.positional import (
    LearnedPositions,
    SinusoidalPositions,
    positional_encoding_backward,
    positional_encoding_forward,
    sinusoidal_table,
)


@given(lead=shapes(min_dims=0, max_dims=2), t=sizes(1, 4), c=sizes(1, 4), extra=sizes(0, 3),
       seed=seeds())
def test_positional_encoding_gradient(lead, t, c, extra, seed):
    rng = np.random.default_rng(seed)
    x, table = rng.standard_normal((*lead, t, c)), rng.standard_normal((t + extra, c))
    offset = int(rng.integers(0, extra + 1))
    check_gradients(positional_encoding_forward, positional_encoding_backward, x, table,
                    names=["x", "table"], offset=offset)


def test_positional_encoding_rejects_positions_past_the_table():
    with pytest.raises(ValueError, match=r"positions 0\.\.4 are outside the table of 4"):
        positional_encoding_forward(np.zeros((1, 5, 2)), np.zeros((4, 2)))


def test_sinusoidal_table_values_and_relative_shift():
    table = sinusoidal_table(50, 6)
    assert table[0].tolist() == [0, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(table[7, 2], math.sin(7 / 10000 ** (2 / 6)))
    np.testing.assert_allclose(table[7, 3], math.cos(7 / 10000 ** (2 / 6)))
    # PE[p + k] is a fixed rotation of PE[p] in each (sin, cos) pair: the same for every p.
    w = 10000 ** (-np.arange(0, 6, 2) / 6)
    k = 5
    for p in (0, 11, 30):
        sin, cos = table[p, 0::2], table[p, 1::2]
        np.testing.assert_allclose(table[p + k, 0::2], sin * np.cos(k * w) + cos * np.sin(k * w),
                                   atol=1e-12)
    assert sinusoidal_table(3, 5).shape == (3, 5)


def test_position_modules():
    rng = np.random.default_rng(0)
    learned = LearnedPositions(6, 3, rng=rng, std=1.0, dtype=np.float64)
    assert set(check_module_gradients(learned, rng.standard_normal((2, 4, 3)))) == {
        "input", "weight"}
    fixed = SinusoidalPositions(6, 3, dtype=np.float64)
    assert fixed.params == {} and fixed.buffers["table"].shape == (6, 3)
    check_module_gradients(fixed, rng.standard_normal((2, 4, 3)))


@given(lead=shapes(min_dims=1, max_dims=3), c=sizes(1, 4), h=sizes(1, 6),
       approximate=st.sampled_from(["none", "tanh"]), bias=st.booleans(), seed=seeds())
def test_feed_forward_gradient(lead, c, h, approximate, bias, seed):
    rng = np.random.default_rng(seed)
    b_fc, b_proj = (rng.standard_normal(h), rng.standard_normal(c)) if bias else (None, None)
    check_gradients(feed_forward_forward, feed_forward_backward, rng.standard_normal((*lead, c)),
                    rng.standard_normal((c, h)), b_fc, rng.standard_normal((h, c)), b_proj,
                    names=["x", "w_fc", "b_fc", "w_proj", "b_proj"], approximate=approximate,
                    h=1e-5)  # one position, width 1: gradients small enough that h = 1e-6's
    # rounding (1.8e-7 seen) exceeds the tolerance; 1e-5 is phase 0's measured best step


def test_feed_forward_module_and_float32():
    rng = np.random.default_rng(0)
    ff = FeedForward(3, 8, rng=rng, std=0.5, proj_std=0.5, dtype=np.float64)
    assert set(check_module_gradients(ff, rng.standard_normal((2, 4, 3)))) == {
        "input", "w_fc", "b_fc", "w_proj", "b_proj"}
    ff32 = FeedForward(3, 8, rng=rng, bias=False)
    assert set(ff32.params) == {"w_fc", "w_proj"}
    assert ff32.forward(np.ones((2, 3), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="unknown GELU approximation 'relu'"):
        FeedForward(3, 8, rng=rng, approximate="relu")


@given(lead=shapes(min_dims=1, max_dims=2), k=sizes(2, 6),
       smoothing=st.sampled_from([0.0, 0.1, 0.5]), seed=seeds())
def test_label_smoothing_gradient(lead, k, smoothing, seed):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, k, size=lead)
    check_gradients(label_smoothing_cross_entropy_forward, label_smoothing_cross_entropy_backward,
                    rng.standard_normal((*lead, k)), names=["logits"], targets=targets,
                    smoothing=smoothing)


def test_label_smoothing_values():
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((4, 5)), rng.integers(0, 5, size=4)
    plain, _ = label_smoothing_cross_entropy_forward(logits, targets=targets, smoothing=0.0)
    reference, _ = softmax_cross_entropy_forward(logits, targets=targets)
    assert plain == pytest.approx(float(reference))
    # The minimum over logits is at p = q, where the loss is the entropy of q.
    eps, k = 0.1, 5
    q = np.full((1, k), eps / k)
    q[0, 2] += 1 - eps
    best, _ = label_smoothing_cross_entropy_forward(np.log(q), targets=np.array([2]),
                                                    smoothing=eps)
    assert float(best) == pytest.approx(-np.sum(q * np.log(q)))
    with pytest.raises(ValueError, match="label smoothing must be in"):
        label_smoothing_cross_entropy_forward(logits, targets=targets, smoothing=1.0)


def test_inverse_sqrt_schedule():
    lrs = [inverse_sqrt_lr(s, d_model=512, warmup_steps=4000) for s in range(20000)]
    peak = int(np.argmax(lrs))
    assert peak == 3999
    assert lrs[peak] == pytest.approx(1 / math.sqrt(512 * 4000))
    assert lrs[15999] == pytest.approx(lrs[3999] / 2)  # 1/sqrt(step): 4x the steps, half the lr
    assert lrs[0] == pytest.approx(lrs[3999] / 4000)
    with pytest.raises(ValueError, match="warmup_steps >= 1"):
        inverse_sqrt_lr(0, d_model=8, warmup_steps=0)


@pytest.mark.parametrize("bias", [True, False])
def test_the_fused_float32_gelu_of_the_feed_forward_agrees_with_phase_1s_pair(bias, monkeypatch):
    """float32 and the exact GELU take phase 0's fused loops (the backward's one pass gives the
    GELU's output and gradient together); ``FUSED = False`` takes phase 1's gelu_forward and
    gelu_backward. Output and every gradient agree to float32's rounding."""
    rng = np.random.default_rng(3)
    c, h = 8, 32
    args = [rng.standard_normal((4, 5, c)), rng.standard_normal((c, h)),
            rng.standard_normal(h) if bias else None, rng.standard_normal((h, c)) / 4,
            rng.standard_normal(c) if bias else None]
    args = [None if a is None else a.astype(np.float32) for a in args]
    dout = rng.standard_normal((4, 5, c)).astype(np.float32)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(feed_forward, "FUSED", fused)
        out, cache = feed_forward_forward(*args)
        results.append((out, *feed_forward_backward(dout.copy(), cache)))
    for fast, plain in zip(*results, strict=True):
        if plain is None:
            assert fast is None
            continue
        assert fast.dtype == np.float32
        np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-5 * np.abs(plain).max())
