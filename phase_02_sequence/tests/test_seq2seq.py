"""Seq2seq: gradients through decoder, state hand-over and encoder; data; greedy decoding."""

import numpy as np
import pytest

from phase_01_nn.module import Module, check_module_gradients
from phase_02_sequence.seq2seq import (
    EOS,
    GO,
    ReverseTask,
    Seq2Seq,
    Seq2SeqConfig,
    exact_match,
    reverse_examples,
)


class TeacherForced(Module):
    """(B, S + L) ids -> the model's teacher-forced logits, so one module check covers all."""

    def __init__(self, model: Seq2Seq, source_length: int) -> None:
        super().__init__()
        self.add_module("model", model)
        self.source_length = source_length

    def forward(self, ids):
        return self.modules["model"].forward(ids[:, :self.source_length],
                                             ids[:, self.source_length:])

    def backward(self, dout):
        self.modules["model"].backward(dout)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_seq2seq_gradients_reach_the_encoder(cell):
    rng = np.random.default_rng(0)
    model = Seq2Seq(Seq2SeqConfig(cell=cell, n_embd=3, n_hidden=4), rng=rng, dtype=np.float64)
    source = rng.integers(0, 10, size=(2, 4))
    target_in, _ = reverse_examples(source)
    errors = check_module_gradients(TeacherForced(model, 4), np.concatenate([source, target_in],
                                                                            axis=1))
    assert errors["model.encoder.w_h"] > 0 and errors["model.source_embedding.weight"] > 0


def test_reverse_examples():
    target_in, target_out = reverse_examples(np.array([[1, 2, 3]]))
    np.testing.assert_array_equal(target_in, [[GO, 3, 2, 1]])
    np.testing.assert_array_equal(target_out, [[3, 2, 1, EOS]])


def test_training_never_draws_a_test_string():
    task = ReverseTask(np.random.default_rng(0), test_length=3, n_test=400)
    assert task.test_source.shape == (400, 3)
    powers = np.array([100, 10, 1])
    drawn = task.train_batch(np.random.default_rng(1), 5000, 3)
    assert not np.isin(drawn @ powers, task.test_codes).any()
    assert task.train_batch(np.random.default_rng(1), 7, 5).shape == (7, 5)
    with pytest.raises(ValueError, match="more than half"):
        ReverseTask(np.random.default_rng(0), test_length=2, n_test=60)


def test_greedy_decoding_shapes_and_exact_match_bounds():
    model = Seq2Seq(Seq2SeqConfig(n_hidden=8), rng=np.random.default_rng(0))
    source = np.random.default_rng(1).integers(0, 10, size=(5, 4))
    decoded = model.greedy_decode(source, 5)
    assert decoded.shape == (5, 5) and decoded.min() >= 0 and decoded.max() <= EOS
    assert 0.0 <= exact_match(model, source) <= 1.0


def test_shape_errors():
    model = Seq2Seq(Seq2SeqConfig(n_hidden=4), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"source ids of shape \(B, S\), got \(4,\)"):
        model.encode(np.arange(4))
    with pytest.raises(ValueError, match=r"target_in must be \(B, L\) with the source's B = 2"):
        model.forward(np.zeros((2, 3), np.int64), np.zeros((3, 3), np.int64))
