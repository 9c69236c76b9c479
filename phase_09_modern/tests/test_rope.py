import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_09_modern.ops.rope import (
    interleaved_to_half_permutation,
    permute_heads_for_half_layout,
    rope_backward,
    rope_forward,
)

layouts = st.sampled_from(["interleaved", "half"])


@given(lead=st.lists(sizes(1, 3), max_size=2), t=sizes(1, 5), half_d=sizes(1, 4),
       layout=layouts, seed=seeds())
def test_rope_gradients(lead, t, half_d, layout, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, t, 2 * half_d))
    check_gradients(rope_forward, rope_backward, x, layout=layout,
                    positions=rng.integers(0, 4096, size=t), names=["x"])


def _score(q, k, m, n, layout):
    q_m, _ = rope_forward(q[None], positions=np.array([m]), layout=layout)
    k_n, _ = rope_forward(k[None], positions=np.array([n]), layout=layout)
    return float(q_m[0] @ k_n[0])


@given(half_d=sizes(1, 32), m=st.integers(0, 4096), n=st.integers(0, 4096),
       shift=st.integers(-4096, 4096), layout=layouts, seed=seeds())
def test_score_depends_only_on_the_offset(half_d, m, n, shift, layout, seed):
    """q_m . k_n = q_{m+s} . k_{n+s}: the rotation by m and by n meet as a rotation by m - n."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal(2 * half_d), rng.standard_normal(2 * half_d)
    m2, n2 = max(m + shift, 0), max(n + shift, 0)
    shift = min(m2 - m, n2 - n)
    a = _score(q, k, m, n, layout)
    b = _score(q, k, m + shift, n + shift, layout)
    assert abs(a - b) <= 1e-12 * np.linalg.norm(q) * np.linalg.norm(k)


def test_score_changes_with_the_offset():
    """The property above is not vacuous: a different offset gives a different score."""
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal(16), rng.standard_normal(16)
    assert abs(_score(q, k, 5, 2, "half") - _score(q, k, 5, 3, "half")) > 1e-3


@given(lead=st.lists(sizes(1, 3), max_size=2), t=sizes(1, 6), half_d=sizes(1, 8),
       layout=layouts, seed=seeds())
def test_rope_preserves_norms(lead, t, half_d, layout, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, t, 2 * half_d))
    y, _ = rope_forward(x, positions=rng.integers(0, 10**6, size=t), layout=layout)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-13)


def test_position_zero_is_the_identity_and_dtype_is_kept():
    x = np.random.default_rng(1).standard_normal((3, 1, 8)).astype(np.float32)
    y, _ = rope_forward(x, positions=np.zeros(1, dtype=int))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


@given(t=sizes(1, 5), half_d=sizes(1, 4), seed=seeds())
def test_the_permutation_maps_one_layout_onto_the_other(t, half_d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, t, 2 * half_d))
    p = interleaved_to_half_permutation(2 * half_d)
    inter, _ = rope_forward(x, layout="interleaved")
    half, _ = rope_forward(x[..., p], layout="half")
    np.testing.assert_array_equal(half, inter[..., p])


@given(b=sizes(1, 2), t=sizes(1, 6), c=sizes(1, 6), n_head=sizes(1, 3), half_d=sizes(1, 3),
       seed=seeds())
def test_permuted_weights_give_equal_scores_in_the_other_layout(b, t, c, n_head, half_d, seed):
    rng = np.random.default_rng(seed)
    d = 2 * half_d
    x = rng.standard_normal((b, t, c))
    w_q, w_k = rng.standard_normal((c, n_head * d)), rng.standard_normal((c, n_head * d))

    def scores(w_q, w_k, layout):
        def heads(w):
            return (x @ w).reshape(b, t, n_head, d).transpose(0, 2, 1, 3)
        q, _ = rope_forward(heads(w_q), layout=layout)
        k, _ = rope_forward(heads(w_k), layout=layout)
        return q @ np.swapaxes(k, -1, -2)

    interleaved = scores(w_q, w_k, "interleaved")
    half = scores(permute_heads_for_half_layout(w_q, n_head),
                  permute_heads_for_half_layout(w_k, n_head), "half")
    np.testing.assert_allclose(half, interleaved, rtol=1e-12, atol=1e-12)
    if t > 1 and half_d > 1:  # without the permutation (not the identity) they disagree
        assert not np.allclose(scores(w_q, w_k, "half"), interleaved)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="even"):
        rope_forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="layout"):
        rope_forward(np.zeros((2, 4)), layout="neox")
    with pytest.raises(ValueError, match="positions"):
        rope_forward(np.zeros((2, 4)), positions=np.arange(3))
