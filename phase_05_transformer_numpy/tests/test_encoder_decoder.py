"""Cross-attention and the encoder-decoder: gradients, masks, decoding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients, numerical_gradient, relative_error
from phase_00_math.strategies import seeds, sizes
from phase_05_transformer_numpy.cross_attention import (
    cross_attention_backward,
    cross_attention_forward,
)
from phase_05_transformer_numpy.diagnose import explain_model_failure
from phase_05_transformer_numpy.encoder_decoder import (
    Transformer,
    TransformerConfig,
    greedy_decode,
)

NAMES = ["x", "memory", "w_q", "b_q", "w_kv", "b_kv", "w_o", "b_o"]


@given(b=sizes(1, 3), tq=sizes(1, 4), tk=sizes(1, 4), n_head=sizes(1, 3), d=sizes(1, 3),
       bias=st.booleans(), masked=st.booleans(), seed=seeds())
def test_cross_attention_gradient(b, tq, tk, n_head, d, bias, masked, seed):
    rng = np.random.default_rng(seed)
    c = n_head * d
    x, memory = rng.standard_normal((b, tq, c)), rng.standard_normal((b, tk, c))
    weights = [rng.standard_normal((c, c)), rng.standard_normal((c, 2 * c)),
               rng.standard_normal((c, c))]
    biases = [rng.standard_normal(n) if bias else None for n in (c, 2 * c, c)]
    mask = None
    if masked:  # a padding mask: each sequence keeps at least its first key
        lengths = rng.integers(1, tk + 1, size=b)
        mask = (np.arange(tk) < lengths[:, None])[:, None, None, :]
    check_gradients(cross_attention_forward, cross_attention_backward, x, memory, weights[0],
                    biases[0], weights[1], biases[1], weights[2], biases[2], names=NAMES,
                    n_head=n_head, mask=mask, h=1e-5)
    # h = 1e-5: with one or two visible keys the w_q gradient is a near-cancelling sum, small
    # enough that h = 1e-6's rounding noise (1.8e-6 relative, seen) exceeds the tolerance


def test_cross_attention_masked_keys_do_not_matter_and_shapes_are_checked():
    rng = np.random.default_rng(0)
    x, memory = rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 3, 4))
    w = [rng.standard_normal(s) for s in ((4, 4), (4, 8), (4, 4))]
    mask = np.array([True, True, False])[None, None, None, :]
    y, _ = cross_attention_forward(x, memory, w[0], None, w[1], None, w[2], None, n_head=2,
                                   mask=mask)
    memory[0, 2] = 100.0
    y2, _ = cross_attention_forward(x, memory, w[0], None, w[1], None, w[2], None, n_head=2,
                                    mask=mask)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match="must share B and C"):
        cross_attention_forward(x, memory[..., :3], *[None] * 6, n_head=2)
    with pytest.raises(ValueError, match="divisible by n_head=3"):
        cross_attention_forward(x, memory, w[0], None, w[1], None, w[2], None, n_head=3)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_whole_encoder_decoder_gradient_check(pre_ln):
    # The loss depends only weakly on the cross-attention queries (the memory's rows are alike
    # at this size), and a tiny gradient's relative error is rounding noise of order eps / (h |g|).
    # Width 6 with every parameter moved by N(0, 0.5^2) keeps those gradients near 1e-3 and the
    # worst error below 5e-7; at width 4 with 0.3 it was 7e-5 at h = 1e-6 and fell as h grew.
    config = TransformerConfig(vocab_size=5, max_len=4, n_layer=2, n_head=2, d_model=6, d_ff=6,
                               pre_ln=pre_ln, smoothing=0.1)
    rng = np.random.default_rng(0)
    model = Transformer(config, rng=rng, dtype=np.float64)
    for value in model.parameters().values():
        value += 0.5 * rng.standard_normal(value.shape)
    src, tgt_in, tgt_out = (rng.integers(0, 5, size=(2, n)) for n in (4, 3, 3))
    model.zero_grad()
    model.forward(src, tgt_in, tgt_out)
    model.backward()
    for name, value in model.parameters().items():
        analytic = model.gradients()[name].copy()

        def loss_at(v, value=value):
            saved = value.copy()
            value[...] = v
            try:
                return float(model.forward(src, tgt_in, tgt_out)[1])
            finally:
                value[...] = saved

        error = relative_error(analytic, numerical_gradient(loss_at, value))
        assert error <= 1e-6, explain_model_failure(
            f"{name}: relative error {error:.2e} in the whole encoder-decoder check")
    names = set(model.parameters())
    assert {"embed.weight", "decoder.1.cross_attn.w_kv", "encoder.0.attn.w_qkv"} <= names
    assert ("ln_enc.gamma" in names) == pre_ln


def test_decoder_is_causal_and_greedy_decode_shapes():
    model = Transformer(TransformerConfig(), rng=np.random.default_rng(0), dtype=np.float64)
    src = np.random.default_rng(1).integers(1, 11, size=(3, 10))
    tgt = np.random.default_rng(2).integers(0, 11, size=(3, 10))
    a, _ = model.forward(src, tgt)
    changed = tgt.copy()
    changed[:, 5:] = 0
    b, _ = model.forward(src, changed)
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=0, atol=1e-12)
    out = greedy_decode(model, src, 10, bos=0)
    assert out.shape == (3, 10) and out.dtype == np.int64
    with pytest.raises(ValueError, match="d_model = 10 is not divisible by n_head = 4"):
        TransformerConfig(d_model=10)
