"""Stacked layers (every input, state and weight gradient-checked) and truncated-BPTT streams."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_02_sequence.stacked import (
    StackedRecurrent,
    StreamBatches,
    recurrent_layer,
    reset_streams,
)


def _flatten(state):
    return [array for layer in state for array in layer]


def _nest(stack, flat):
    sizes_ = [len(layer.state_names) for layer in stack.modules.values()]
    starts = np.cumsum([0, *sizes_])
    return tuple(tuple(flat[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True))


def stack_as_op(stack):
    """The stack as a pure op of (x, every initial state array, every parameter), so that
    ``check_gradients`` checks all of them at once, final states included."""
    params = stack.parameters()
    n_state = sum(len(layer.state_names) for layer in stack.modules.values())

    def forward(x, *arrays):
        for param, value in zip(params.values(), arrays[n_state:], strict=True):
            param[...] = value
        hs, final = stack.forward(x, _nest(stack, arrays[:n_state]))
        return (hs, *_flatten(final)), None

    def backward(douts, _):
        stack.zero_grad()
        dx, dstate0 = stack.backward(douts[0], _nest(stack, douts[1:]))
        return (dx, *_flatten(dstate0), *(g.copy() for g in stack.gradients().values()))

    return forward, backward, n_state, list(params)


@given(cell=st.sampled_from(["rnn", "lstm", "gru"]), n_layer=sizes(1, 3), b=sizes(1, 2),
       t=sizes(1, 4), d=sizes(2, 3), h=sizes(2, 3), seed=seeds())
def test_stack_gradients_through_every_layer_and_state(cell, n_layer, b, t, d, h, seed):
    rng = np.random.default_rng(seed)
    stack = StackedRecurrent(cell, d, h, n_layer, rng=rng, dtype=np.float64)
    forward, backward, n_state, names = stack_as_op(stack)
    states = [rng.standard_normal((b, h)) for _ in range(n_state)]
    params = [value.copy() for value in stack.parameters().values()]
    errors = check_gradients(forward, backward, rng.standard_normal((b, t, d)), *states, *params,
                             names=["x", *[f"state{i}" for i in range(n_state)], *names])
    assert len(errors) == 1 + n_state + len(names)


def test_stack_without_state_returns_no_state_gradient():
    rng = np.random.default_rng(0)
    stack = StackedRecurrent("lstm", 3, 4, 2, rng=rng)
    hs, final = stack.forward(rng.standard_normal((2, 5, 3)).astype(np.float32))
    assert hs.shape == (2, 5, 4) and len(final) == 2 and len(final[0]) == 2
    dx, dstate0 = stack.backward(np.ones_like(hs))
    assert dx.shape == (2, 5, 3) and dstate0 is None


def test_stack_errors_name_the_problem():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        recurrent_layer("transformer", 2, 2, rng=rng)
    with pytest.raises(ValueError, match="n_layer must be >= 1, got 0"):
        StackedRecurrent("rnn", 2, 2, 0, rng=rng)
    stack = StackedRecurrent("lstm", 2, 3, 2, rng=rng)
    with pytest.raises(ValueError, match="state has 1 layer entries for 2 layers"):
        stack.forward(np.zeros((1, 2, 2), np.float32), ((np.zeros((1, 3)),) * 2,))
    with pytest.raises(ValueError, match=r"LSTM state is \('h', 'c'\), got a tuple of 1"):
        stack.forward(np.zeros((1, 2, 2), np.float32), ((np.zeros((1, 3)),),) * 2)
    with pytest.raises(ValueError, match=r"c0 has shape \(1, 4\); expected"):
        stack.forward(np.zeros((1, 2, 2), np.float32), ((np.zeros((1, 3)), np.zeros((1, 4))),) * 2)


def test_streams_are_contiguous_and_shifted_by_one():
    data = np.arange(23)
    batches = StreamBatches(data, batch_size=2, seq_len=3)  # streams of 11: [0..10], [11..21]
    assert batches.windows == 3
    x, y, fresh = batches.next_batch()
    np.testing.assert_array_equal(x, [[0, 1, 2], [11, 12, 13]])
    np.testing.assert_array_equal(y, [[1, 2, 3], [12, 13, 14]])
    assert fresh.tolist() == [True, True]
    x, _, fresh = batches.next_batch()
    np.testing.assert_array_equal(x, [[3, 4, 5], [14, 15, 16]])
    assert fresh.tolist() == [False, False]
    batches.next_batch()
    x, _, fresh = batches.next_batch()  # a new pass starts the streams again
    np.testing.assert_array_equal(x, [[0, 1, 2], [11, 12, 13]])
    assert fresh.tolist() == [True, True]


def test_staggered_resets_and_reset_streams():
    batches = StreamBatches(np.arange(100), batch_size=3, seq_len=2, reset_every=2)
    marks = [batches.next_batch()[2].tolist() for _ in range(4)]
    assert marks == [[True, True, True], [False, True, False], [True, False, True],
                     [False, True, False]]
    state = ((np.ones((3, 2), np.float32), np.full((3, 2), 2.0, np.float32)),)
    reset = reset_streams(state, np.array([False, True, False]))
    np.testing.assert_array_equal(reset[0][1], [[2, 2], [0, 0], [2, 2]])
    assert reset[0][1].dtype == np.float32 and state[0][1][1, 0] == 2.0  # a copy
    assert reset_streams(state, np.array([True, True, True])) is None
    assert reset_streams(state, np.zeros(3, bool)) is state


def test_streams_reject_too_little_data():
    with pytest.raises(ValueError, match="10 tokens are too few for 4 streams of one window of 3"):
        StreamBatches(np.arange(10), batch_size=4, seq_len=3)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_carried_state_makes_windows_equal_one_long_sequence(cell):
    rng = np.random.default_rng(1)
    stack = StackedRecurrent(cell, 3, 4, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 7, 3))
    whole, whole_final = stack.forward(x)
    first, state = stack.forward(x[:, :4])
    second, final = stack.forward(x[:, 4:], state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-12)
    for a, b in zip(_flatten(final), _flatten(whole_final), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
