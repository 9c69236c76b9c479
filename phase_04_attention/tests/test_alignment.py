"""Bahdanau's and Luong's scores and the masked ``attend``: gradient checks in float64 over
hypothesis-drawn shapes (a batch of 1, a source of 1, padding masks with fully masked rows),
and their properties."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_04_attention.alignment import (
    additive_score_backward,
    additive_score_forward,
    attend_backward,
    attend_forward,
    attend_weights,
    concat_score_backward,
    concat_score_forward,
    dot_score_backward,
    dot_score_forward,
    general_score_backward,
    general_score_forward,
)

batches, steps, sources, widths = sizes(1, 3), sizes(1, 3), sizes(1, 5), sizes(1, 4)


def padding_mask(rng: np.random.Generator, batch: int, source: int) -> np.ndarray:
    """(B, 1, S) True on each sequence's real tokens: lengths from 0 (all padding) to S."""
    lengths = rng.integers(0, source + 1, size=batch)
    return (np.arange(source) < lengths[:, None])[:, None, :]


@given(b=batches, tq=steps, s=sources, dq=widths, a=widths, seed=seeds())
def test_additive_score_gradients(b, tq, s, dq, a, seed):
    rng = np.random.default_rng(seed)
    check_gradients(additive_score_forward, additive_score_backward,
                    rng.standard_normal((b, tq, dq)), rng.standard_normal((b, s, a)),
                    rng.standard_normal((dq, a)), rng.standard_normal(a),
                    names=["query", "projected_keys", "w_query", "v"])


@given(b=batches, tq=steps, s=sources, d=widths, seed=seeds())
def test_dot_score_gradients(b, tq, s, d, seed):
    rng = np.random.default_rng(seed)
    check_gradients(dot_score_forward, dot_score_backward, rng.standard_normal((b, tq, d)),
                    rng.standard_normal((b, s, d)), names=["query", "keys"])


@given(b=batches, tq=steps, s=sources, dq=widths, dk=widths, seed=seeds())
def test_general_score_gradients(b, tq, s, dq, dk, seed):
    rng = np.random.default_rng(seed)
    check_gradients(general_score_forward, general_score_backward,
                    rng.standard_normal((b, tq, dq)), rng.standard_normal((b, s, dk)),
                    rng.standard_normal((dq, dk)), names=["query", "keys", "w"])


@given(b=batches, tq=steps, s=sources, dq=widths, dk=widths, a=widths, seed=seeds())
def test_concat_score_gradients_and_equality_with_additive(b, tq, s, dq, dk, a, seed):
    rng = np.random.default_rng(seed)
    query, keys = rng.standard_normal((b, tq, dq)), rng.standard_normal((b, s, dk))
    w, v = rng.standard_normal((dq + dk, a)), rng.standard_normal(a)
    check_gradients(concat_score_forward, concat_score_backward, query, keys, w, v,
                    names=["query", "keys", "w", "v"])
    additive, _ = additive_score_forward(query, keys @ w[dq:], w[:dq], v)
    np.testing.assert_allclose(concat_score_forward(query, keys, w, v)[0], additive, rtol=1e-12)


@given(b=batches, tq=steps, s=sources, dv=widths, masked=st.booleans(), seed=seeds())
def test_attend_gradients_with_and_without_padding(b, tq, s, dv, masked, seed):
    rng = np.random.default_rng(seed)
    mask = padding_mask(rng, b, s) if masked else None
    check_gradients(attend_forward, attend_backward, rng.standard_normal((b, tq, s)),
                    rng.standard_normal((b, s, dv)), names=["scores", "values"], mask=mask)


@given(b=batches, tq=steps, s=sources, dv=widths, seed=seeds())
def test_attend_weights_are_a_distribution_over_the_real_tokens(b, tq, s, dv, seed):
    rng = np.random.default_rng(seed)
    mask = padding_mask(rng, b, s)
    scores = 5.0 * rng.standard_normal((b, tq, s))
    context, cache = attend_forward(scores, rng.standard_normal((b, s, dv)), mask=mask)
    weights = attend_weights(cache)
    assert np.all(np.isfinite(context)) and np.all(weights >= 0)
    assert np.all(weights[~np.broadcast_to(mask, weights.shape)] == 0)
    has_tokens = mask.any(axis=-1)[:, 0]
    np.testing.assert_allclose(weights[has_tokens].sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(context[~has_tokens] == 0)
    shifted, _ = attend_forward(scores + rng.standard_normal((b, tq, 1)), cache[1], mask=mask)
    np.testing.assert_allclose(shifted, context, atol=1e-12)


def test_padding_values_do_not_reach_the_context():
    rng = np.random.default_rng(0)
    scores, values = rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 4, 3))
    mask = np.array([True, True, True, False])
    context, _ = attend_forward(scores, values, mask=mask)
    values[0, 3] = 1e6
    np.testing.assert_array_equal(attend_forward(scores, values, mask=mask)[0], context)


def test_float32_in_float32_out():
    rng = np.random.default_rng(0)
    query = rng.standard_normal((2, 3, 4)).astype(np.float32)
    keys = rng.standard_normal((2, 5, 4)).astype(np.float32)
    scores, _ = general_score_forward(query, keys, np.eye(4, dtype=np.float32))
    context, _ = attend_forward(scores, keys)
    assert scores.dtype == context.dtype == np.float32


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"share their leading dimensions, got \(2, 1, 3\)"):
        dot_score_forward(np.zeros((2, 1, 3)), np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match=r"w must be \(Dq, Dk\) = \(3, 5\)"):
        general_score_forward(np.zeros((1, 1, 3)), np.zeros((1, 4, 5)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"w must be \(Dq \+ Dk, A\) with Dq \+ Dk = 8"):
        concat_score_forward(np.zeros((1, 1, 3)), np.zeros((1, 4, 5)), np.zeros((7, 2)),
                             np.zeros(2))
    with pytest.raises(ValueError, match=r"mask of shape \(5,\) does not broadcast"):
        attend_forward(np.zeros((1, 2, 4)), np.zeros((1, 4, 3)), mask=np.ones(5, bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        attend_forward(np.zeros((1, 2, 4)), np.zeros((1, 4, 3)), mask=np.ones(4))
