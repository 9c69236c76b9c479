"""Gradient checks of every recurrent op (step, cell and sequence) in float64, and their errors."""

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_02_sequence.gru import (
    gru_backward,
    gru_cell_backward,
    gru_cell_forward,
    gru_forward,
    gru_step_backward,
    gru_step_forward,
)
from phase_02_sequence.lstm import (
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
)
from phase_02_sequence.rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
lengths = sizes(1, 6)
# D, H >= 2 for whole sequences: with B = H = 1 the gradient of h0 is ONE number, a sum over
# paths of random sign that lands near 0 now and then (likewise x with B = T = D = 1); its
# relative error then measures only the central-difference noise (about 1e-10 absolute).
# Two or more elements per argument make that vanishingly rare.
widths = sizes(2, 3)


def _weights(rng, cell, d, h):
    """Weights that keep the gradient of the initial state alive over six steps: ``w_h`` is made
    of orthogonal (H, H) blocks, the input weights are scaled by 0.5/sqrt(D), and the LSTM gets
    its usual forget bias of 1. A gradient of h0 that had vanished to 1e-4 would be compared
    with central-difference noise of about 1e-10 and fail at 1e-7 for a reason that has nothing
    to do with the backward (chapter 2 is about that reason)."""
    g = GATES[cell]
    w_x = 0.5 * rng.standard_normal((d, g * h)) / np.sqrt(d)
    w_h = np.concatenate([np.linalg.qr(rng.standard_normal((h, h)))[0] for _ in range(g)], axis=1)
    biases = [0.1 * rng.standard_normal(g * h) for _ in range(2 if cell == "gru" else 1)]
    if cell == "lstm":
        biases[0][h:2 * h] += 1.0
    return [w_x, w_h, *biases]


def _bias_names(cell):
    return ["b_x", "b_h"] if cell == "gru" else ["b"]


@given(b=sizes(1, 3), d=widths, h=widths, seed=seeds())
def test_rnn_step_gradients(b, d, h, seed):
    rng = np.random.default_rng(seed)
    check_gradients(rnn_step_forward, rnn_step_backward, rng.standard_normal((b, d)),
                    rng.standard_normal((b, h)), *_weights(rng, "rnn", d, h),
                    names=["x_t", "h_prev", "w_x", "w_h", "b"])


@given(b=sizes(1, 3), t=lengths, d=widths, h=widths, seed=seeds())
def test_rnn_sequence_gradients(b, t, d, h, seed):
    rng = np.random.default_rng(seed)
    x, h0 = rng.standard_normal((b, t, d)), rng.standard_normal((b, h))
    errors = check_gradients(rnn_forward, rnn_backward, x, h0, *_weights(rng, "rnn", d, h),
                             names=["x", "h0", "w_x", "w_h", "b"])
    assert set(errors) == {"x", "h0", "w_x", "w_h", "b"}


@given(b=sizes(1, 3), h=widths, seed=seeds())
def test_lstm_cell_gradients(b, h, seed):
    rng = np.random.default_rng(seed)
    check_gradients(lstm_cell_forward, lstm_cell_backward, rng.standard_normal((b, 4 * h)),
                    rng.standard_normal((b, h)), names=["a", "c_prev"])


@given(b=sizes(1, 3), d=widths, h=widths, seed=seeds())
def test_lstm_step_gradients(b, d, h, seed):
    rng = np.random.default_rng(seed)
    check_gradients(lstm_step_forward, lstm_step_backward, rng.standard_normal((b, d)),
                    rng.standard_normal((b, h)), rng.standard_normal((b, h)),
                    *_weights(rng, "lstm", d, h),
                    names=["x_t", "h_prev", "c_prev", "w_x", "w_h", "b"])


@given(b=sizes(1, 3), t=lengths, d=widths, h=widths, seed=seeds())
def test_lstm_sequence_gradients(b, t, d, h, seed):
    rng = np.random.default_rng(seed)
    x, h0, c0 = (rng.standard_normal(s) for s in [(b, t, d), (b, h), (b, h)])
    errors = check_gradients(lstm_forward, lstm_backward, x, h0, c0,
                             *_weights(rng, "lstm", d, h),
                             names=["x", "h0", "c0", "w_x", "w_h", "b"])
    assert set(errors) == {"x", "h0", "c0", "w_x", "w_h", "b"}


@given(b=sizes(1, 3), h=widths, seed=seeds())
def test_gru_cell_gradients(b, h, seed):
    rng = np.random.default_rng(seed)
    check_gradients(gru_cell_forward, gru_cell_backward, rng.standard_normal((b, 3 * h)),
                    rng.standard_normal((b, 3 * h)), rng.standard_normal((b, h)),
                    names=["ax", "ah", "h_prev"])


@given(b=sizes(1, 3), d=widths, h=widths, seed=seeds())
def test_gru_step_gradients(b, d, h, seed):
    rng = np.random.default_rng(seed)
    check_gradients(gru_step_forward, gru_step_backward, rng.standard_normal((b, d)),
                    rng.standard_normal((b, h)), *_weights(rng, "gru", d, h),
                    names=["x_t", "h_prev", "w_x", "w_h", "b_x", "b_h"])


@given(b=sizes(1, 3), t=lengths, d=widths, h=widths, seed=seeds())
def test_gru_sequence_gradients(b, t, d, h, seed):
    rng = np.random.default_rng(seed)
    x, h0 = rng.standard_normal((b, t, d)), rng.standard_normal((b, h))
    errors = check_gradients(gru_forward, gru_backward, x, h0, *_weights(rng, "gru", d, h),
                             names=["x", "h0", "w_x", "w_h", "b_x", "b_h"])
    assert set(errors) == {"x", "h0", "w_x", "w_h", "b_x", "b_h"}


SEQUENCE_OPS = {"rnn": (rnn_forward, rnn_backward, 1), "lstm": (lstm_forward, lstm_backward, 2),
                "gru": (gru_forward, gru_backward, 1)}


@pytest.mark.parametrize("cell", sorted(SEQUENCE_OPS))
def test_absent_initial_state_is_zeros_and_gets_no_gradient(cell):
    forward, backward, n_states = SEQUENCE_OPS[cell]
    rng = np.random.default_rng(0)
    x, weights = rng.standard_normal((2, 4, 3)), _weights(rng, cell, 3, 2)
    zeros = [np.zeros((2, 2))] * n_states
    names = ["x", *[f"s{i}" for i in range(n_states)], "w_x", "w_h", *_bias_names(cell)]
    check_gradients(forward, backward, x, *[None] * n_states, *weights, names=names)
    with_none, _ = forward(x, *[None] * n_states, *weights)
    with_zeros, _ = forward(x, *zeros, *weights)
    for a, b in zip(with_none, with_zeros, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", sorted(SEQUENCE_OPS))
def test_sequence_equals_the_step_applied_in_a_loop(cell):
    forward, _, n_states = SEQUENCE_OPS[cell]
    step = {"rnn": rnn_step_forward, "lstm": lstm_step_forward, "gru": gru_step_forward}[cell]
    rng = np.random.default_rng(1)
    x, weights = rng.standard_normal((3, 5, 2)), _weights(rng, cell, 2, 4)
    states = [rng.standard_normal((3, 4)) for _ in range(n_states)]
    outputs, _ = forward(x, *states, *weights)
    for t in range(x.shape[1]):
        new, _ = step(x[:, t], *states, *weights)
        states = list(new) if n_states == 2 else [new]
        np.testing.assert_allclose(outputs[0][:, t], states[0], rtol=1e-12, atol=1e-14)
    for final, state in zip(outputs[1:], states, strict=True):
        np.testing.assert_allclose(final, state, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", sorted(SEQUENCE_OPS))
def test_float32_stays_float32(cell):
    forward, backward, n_states = SEQUENCE_OPS[cell]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    weights = [w.astype(np.float32) for w in _weights(rng, cell, 2, 3)]
    outputs, cache = forward(x, *[None] * n_states, *weights)
    assert all(o.dtype == np.float32 for o in outputs)
    grads = backward(tuple(np.ones_like(o) for o in outputs), cache)
    assert all(g.dtype == np.float32 for g in grads if g is not None)


@pytest.mark.parametrize("cell", sorted(SEQUENCE_OPS))
def test_bad_shapes_fail_clearly(cell):
    forward, _, n_states = SEQUENCE_OPS[cell]
    name = f"{cell}_forward"
    rng = np.random.default_rng(3)
    weights = _weights(rng, cell, 3, 2)
    none = [None] * n_states
    with pytest.raises(ValueError, match=rf"{name}: x has shape \(2, 0, 3\), a sequence of len"):
        forward(np.zeros((2, 0, 3)), *none, *weights)
    with pytest.raises(ValueError, match=rf"{name}: h0 has shape \(3, 2\); expected .* \(2, 2\)"):
        forward(np.zeros((2, 4, 3)), np.zeros((3, 2)), *none[1:], *weights)
    with pytest.raises(ValueError, match=rf"{name}: x has shape \(2, 4, 5\), so 5 input features"):
        forward(np.zeros((2, 4, 5)), *none, *weights)
    with pytest.raises(ValueError, match=rf"{name}: x must be \(B, T, D\), got shape \(4, 3\)"):
        forward(np.zeros((4, 3)), *none, *weights)


def test_lstm_cell_state_shape_mismatch():
    rng = np.random.default_rng(4)
    weights = _weights(rng, "lstm", 3, 2)
    with pytest.raises(ValueError, match=r"c0 has shape \(2, 5\); expected \(B, H\) = \(2, 2\)"):
        lstm_forward(np.zeros((2, 4, 3)), np.zeros((2, 2)), np.zeros((2, 5)), *weights)
