import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_01_nn.module import check_module_gradients
from phase_04_attention import attention
from phase_04_attention.attention import (
    MultiHeadSelfAttention,
    SelfAttention,
    attention_entropy,
    attention_weights,
    causal_mask,
    masked_softmax,
    multi_head_attention_weights,
    multi_head_self_attention_backward,
    multi_head_self_attention_forward,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
    self_attention_backward,
    self_attention_forward,
)


def _mha_params(rng, c, bias=True):
    w_qkv, w_o = rng.standard_normal((c, 3 * c)), rng.standard_normal((c, c))
    b_qkv = rng.standard_normal(3 * c) if bias else None
    b_o = rng.standard_normal(c) if bias else None
    return w_qkv, b_qkv, w_o, b_o


@given(b=sizes(1, 3), h=sizes(1, 3), t_q=sizes(1, 5), t_k=sizes(1, 5), d=sizes(1, 4),
       dv=sizes(1, 3), causal=st.booleans(), use_mask=st.booleans(), seed=seeds())
# With two causal keys only query 1 has a gradient, and it is small when (v0 - v1) . dout is near
# 0. In this draw dq and dk have norms near 2e-4 and differ from the central differences by 1e-10
# and 2e-10, rounding noise (phase 0 notes, section 3.4), but that is a relative error of 2.9e-7
# and 4.5e-7. The check must pass it.
@example(b=1, h=1, t_q=2, t_k=2, d=2, dv=2, causal=True, use_mask=False, seed=2032)
def test_sdpa_gradients_with_masks_including_fully_masked_rows(
    b, h, t_q, t_k, d, dv, causal, use_mask, seed
):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((b, h, t_q, d)), rng.standard_normal((b, h, t_k, d))
    v = rng.standard_normal((b, h, t_k, dv))
    mask = None
    if use_mask:
        mask = rng.random((b, 1, t_q, t_k)) < 0.6
        mask[..., 0, :] = False  # one query that may see nothing
    check_gradients(
        scaled_dot_product_attention_forward, scaled_dot_product_attention_backward,
        q, k, v, mask=mask, causal=causal, names=["q", "k", "v"],
    )


def test_fully_masked_rows_give_zeros_not_nan():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 3, 2)) for _ in range(3))
    mask = np.array([[True, False, True], [False, False, False], [True, True, True]])
    y, cache = scaled_dot_product_attention_forward(q, k, v, mask=mask)
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[0, 1], 0.0)
    np.testing.assert_array_equal(attention_weights(cache)[0, 1], 0.0)
    dq, dk, dv = scaled_dot_product_attention_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dq[0, 1], 0.0)
    assert all(np.all(np.isfinite(g)) for g in (dq, dk, dv))


@given(b=sizes(1, 3), t=sizes(1, 5), n_head=sizes(1, 3), d=sizes(1, 3), causal=st.booleans(),
       bias=st.booleans(), seed=seeds())
def test_multi_head_gradients(b, t, n_head, d, causal, bias, seed):
    rng = np.random.default_rng(seed)
    c = n_head * d
    x = rng.standard_normal((b, t, c))
    check_gradients(
        multi_head_self_attention_forward, multi_head_self_attention_backward,
        x, *_mha_params(rng, c, bias), n_head=n_head, causal=causal,
        names=["x", "w_qkv", "b_qkv", "w_o", "b_o"],
    )


@given(b=sizes(1, 3), t=sizes(1, 5), c=sizes(1, 4), hs=sizes(1, 3), causal=st.booleans(),
       seed=seeds())
def test_single_head_gradients(b, t, c, hs, causal, seed):
    rng = np.random.default_rng(seed)
    check_gradients(
        self_attention_forward, self_attention_backward, rng.standard_normal((b, t, c)),
        rng.standard_normal((c, hs)), rng.standard_normal((c, hs)), rng.standard_normal((c, 2)),
        causal=causal, names=["x", "w_q", "w_k", "w_v"], h=1e-5,
    )  # h = 1e-5: with two positions the w_q gradient can be ~1e-4 of the others, and at
    # h = 1e-6 the differences' rounding (eps / h) is then a visible share of it


def test_multi_head_equals_a_loop_over_single_heads():
    """The batched (B, H, T, D) computation is the per-head recipe of the paper, concatenated."""
    rng = np.random.default_rng(1)
    b, t, n_head, d = 2, 5, 3, 4
    c = n_head * d
    x = rng.standard_normal((b, t, c))
    w_qkv, b_qkv, w_o, b_o = _mha_params(rng, c)
    y, _ = multi_head_self_attention_forward(x, w_qkv, b_qkv, w_o, b_o, n_head=n_head, causal=True)
    heads = []
    for h in range(n_head):
        cols = slice(h * d, (h + 1) * d)
        q = x @ w_qkv[:, :c][:, cols] + b_qkv[:c][cols]
        k = x @ w_qkv[:, c:2 * c][:, cols] + b_qkv[c:2 * c][cols]
        v = x @ w_qkv[:, 2 * c:][:, cols] + b_qkv[2 * c:][cols]
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d) + np.where(causal_mask(t), 0, -np.inf)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append(p / p.sum(-1, keepdims=True) @ v)
    np.testing.assert_allclose(y, np.concatenate(heads, axis=-1) @ w_o + b_o, rtol=1e-12)


@given(t=sizes(2, 8), cut=st.integers(0, 7), seed=seeds())
def test_causality_future_tokens_do_not_change_the_past(t, cut, seed):
    cut = cut % t
    rng = np.random.default_rng(seed)
    c, n_head = 6, 2
    params = _mha_params(rng, c)
    x = rng.standard_normal((2, t, c))
    changed = x.copy()
    changed[:, cut + 1:] = rng.standard_normal(changed[:, cut + 1:].shape) * 10
    y1, _ = multi_head_self_attention_forward(x, *params, n_head=n_head, causal=True)
    y2, _ = multi_head_self_attention_forward(changed, *params, n_head=n_head, causal=True)
    np.testing.assert_array_equal(y1[:, :cut + 1], y2[:, :cut + 1])


@given(t_q=sizes(1, 6), t_k=sizes(1, 6), causal=st.booleans(), seed=seeds())
def test_rows_sum_to_one(t_q, t_k, causal, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, t_q, 3)), rng.standard_normal((2, t_k, 3))
    if causal and t_k < t_q:
        causal = False  # with more queries than keys, the first queries would see nothing
    _, cache = scaled_dot_product_attention_forward(q, k, k, causal=causal)
    np.testing.assert_allclose(attention_weights(cache).sum(-1), 1.0, rtol=1e-12)


@given(shape=st.tuples(sizes(1, 3), sizes(1, 6)), shift=st.floats(-1e3, 1e3), seed=seeds())
def test_adding_a_constant_to_the_scores_changes_nothing(shape, shift, seed):
    scores = np.random.default_rng(seed).standard_normal(shape)
    np.testing.assert_allclose(
        masked_softmax(scores + shift), masked_softmax(scores.copy()), rtol=1e-9, atol=1e-15
    )


@given(t=sizes(1, 7), seed=seeds())
def test_without_positions_self_attention_is_permutation_equivariant(t, seed):
    rng = np.random.default_rng(seed)
    c, n_head = 6, 3
    params = _mha_params(rng, c)
    x = rng.standard_normal((2, t, c))
    perm = rng.permutation(t)
    y, _ = multi_head_self_attention_forward(x, *params, n_head=n_head)
    y_perm, _ = multi_head_self_attention_forward(x[:, perm], *params, n_head=n_head)
    np.testing.assert_allclose(y_perm, y[:, perm], rtol=1e-10, atol=1e-12)


def test_causal_mask_shapes():
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    # two new queries at the end of a five-token sequence
    np.testing.assert_array_equal(causal_mask(2, 5), [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])


def test_float32_in_float32_out():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 8)).astype(np.float32)
    params = [None if p is None else p.astype(np.float32) for p in _mha_params(rng, 8)]
    y, cache = multi_head_self_attention_forward(x, *params, n_head=2, causal=True)
    grads = multi_head_self_attention_backward(np.ones_like(y), cache)
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


def test_entropy_of_uniform_and_one_hot_heads():
    t = 4
    uniform = np.full((1, 1, t, t), 1 / t)
    one_hot = np.broadcast_to(np.eye(t), (1, 1, t, t))
    np.testing.assert_allclose(attention_entropy(np.concatenate([uniform, one_hot], 1)),
                               [np.log(t), 0.0])


def test_user_errors_fail_clearly():
    x = np.zeros((1, 3, 6))
    w_qkv, b_qkv, w_o, b_o = _mha_params(np.random.default_rng(0), 6)
    with pytest.raises(ValueError, match="divisible by n_head=4"):
        multi_head_self_attention_forward(x, w_qkv, b_qkv, w_o, b_o, n_head=4)
    with pytest.raises(ValueError, match="same last dimension"):
        scaled_dot_product_attention_forward(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="mask must be boolean"):
        scaled_dot_product_attention_forward(x, x, x, mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention_forward(x, x, x, mask=np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="n_embd=6 must be divisible"):
        MultiHeadSelfAttention(6, 4, rng=np.random.default_rng(0))


@pytest.mark.parametrize("module_class", ["multi", "single"])
def test_modules_accumulate_gradients_and_expose_weights(module_class):
    rng = np.random.default_rng(0)
    if module_class == "multi":
        layer = MultiHeadSelfAttention(6, 2, rng=rng, dtype=np.float64)
    else:
        layer = SelfAttention(6, 3, rng=rng, dtype=np.float64)
    for name, value in layer.params.items():
        layer.params[name] = value + rng.standard_normal(value.shape)  # biases away from 0
    x = rng.standard_normal((2, 4, 6))
    check_module_gradients(layer, x)
    assert layer.last_weights.shape[-2:] == (4, 4)
    assert np.all(np.triu(layer.last_weights[..., :, :], k=1) == 0)
    if module_class == "multi":
        _, cache = multi_head_self_attention_forward(
            x, *(layer.params[n] for n in ("w_qkv", "b_qkv", "w_o", "b_o")), n_head=2, causal=True)
        np.testing.assert_array_equal(multi_head_attention_weights(cache), layer.last_weights)


@given(seed=seeds(), lead=st.sampled_from([(), (3,), (2, 3)]), causal=st.booleans(),
       masked=st.sampled_from(["none", "random", "empty rows"]),
       dtype=st.sampled_from([np.float64, np.float32]), one_at_a_time=st.booleans(),
       query_block=st.sampled_from([64, 1, 2, 3]))
def test_rebuilding_the_weights_equals_keeping_them(seed, lead, causal, masked, dtype,
                                                    one_at_a_time, query_block):
    """``keep_weights=False`` (log-sum-exp kept, P rebuilt in the backward, slices of the
    batch, rowsum(dP * P) as dy . y, causal queries in blocks that skip the keys after them)
    against the plain path that keeps P: the same output and gradients to rounding, queries
    that see nothing included; with a 1-byte budget every index of the first axis is its own
    slice, and a ``QUERY_BLOCK`` of 1 to 3 cuts the 5 queries into 5, 3 or 2 blocks."""
    budget, block = attention.SCORES_SLICE_BYTES, attention.QUERY_BLOCK
    attention.SCORES_SLICE_BYTES = 1 if one_at_a_time else budget
    attention.QUERY_BLOCK = query_block
    try:
        _compare_rebuilt_with_kept(seed, lead, causal, masked, dtype)
    finally:
        attention.SCORES_SLICE_BYTES, attention.QUERY_BLOCK = budget, block


@pytest.mark.parametrize(("t_q", "t_k", "causal", "expected"), [
    (256, 256, True, [(0, 64, 64), (64, 128, 128), (128, 192, 192), (192, 256, 256)]),
    (128, 160, True, [(0, 64, 96), (64, 128, 160)]),  # queries are the last 128 of 160 keys
    (100, 100, True, [(0, 100, 100)]),  # under two blocks: one
    (256, 256, False, [(0, 256, 256)]),  # no causal mask: every query sees every key
    (256, 200, True, [(0, 256, 200)]),  # fewer keys than queries: one block
])
def test_query_blocks_cover_the_queries_and_skip_only_masked_keys(t_q, t_k, causal, expected):
    blocks = attention._query_blocks(t_q, t_k, causal, None)
    assert [(rows.start, rows.stop, keys.stop) for rows, keys in blocks] == expected
    assert all(keys.start == 0 for _, keys in blocks)
    assert attention._query_blocks(t_q, t_k, causal, np.ones((t_q, t_k), bool)) == [
        (slice(0, t_q), slice(0, t_k))]  # an explicit mask: one block


def _compare_rebuilt_with_kept(seed, lead, causal, masked, dtype):
    rng = np.random.default_rng(seed)
    t, d = 5, 4
    q, k, v = (rng.standard_normal((*lead, t, d)).astype(dtype) for _ in range(3))
    mask = None if masked == "none" else rng.random((*lead, t, t)) < 0.6
    if masked == "empty rows":
        mask[..., 1, :] = False
    dy = rng.standard_normal((*lead, t, d)).astype(dtype)
    options = {"causal": causal, "mask": mask}
    y_plain, plain = scaled_dot_product_attention_forward(q, k, v, **options)
    y_fast, fast = scaled_dot_product_attention_forward(q, k, v, keep_weights=False, **options)
    assert fast.weights is None and y_fast.dtype == y_plain.dtype
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10,
                                                                     "atol": 1e-12}
    np.testing.assert_allclose(y_fast, y_plain, **tol)
    np.testing.assert_allclose(attention_weights(fast), attention_weights(plain), **tol)
    for fast_grad, plain_grad in zip(scaled_dot_product_attention_backward(dy, fast),
                                     scaled_dot_product_attention_backward(dy, plain),
                                     strict=True):
        assert fast_grad.dtype == plain_grad.dtype
        np.testing.assert_allclose(fast_grad, plain_grad, **tol)


@given(seed=seeds())
def test_rebuilt_weights_pass_the_gradient_check(seed):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((2, 3, 4, 3)) for _ in range(3))

    check_gradients(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward,
                    q, k, v, causal=True, keep_weights=False)
