"""Seq2seq with attention: whole-model gradient checks (with and without a padding mask),
padding never attended, and a tiny reverse task learned."""

import numpy as np
import pytest

from phase_01_nn.module import Module, check_module_gradients
from phase_02_sequence.seq2seq import EOS, reverse_examples
from phase_04_attention.seq2seq_attention import (
    AttentionSeq2SeqConfig,
    BahdanauSeq2Seq,
    LuongSeq2Seq,
    Seq2SeqAttentionConfig,
    reverse_task,
    run_seq2seq_attention,
)


class TeacherForced(Module):
    """(B, S + L) ids -> teacher-forced logits, so one module check covers every parameter."""

    def __init__(self, model, source_length: int, source_mask=None) -> None:
        super().__init__()
        self.add_module("model", model)
        self.source_length, self.source_mask = source_length, source_mask

    def forward(self, ids):
        return self.modules["model"].forward(ids[:, :self.source_length],
                                             ids[:, self.source_length:], self.source_mask)

    def backward(self, dout):
        self.modules["model"].backward(dout)


def _model(kind: str, score: str = "general"):
    config = AttentionSeq2SeqConfig(n_embd=3, n_hidden=4, attn_size=3, score=score)
    model_class = BahdanauSeq2Seq if kind == "bahdanau" else LuongSeq2Seq
    model = model_class(config, rng=np.random.default_rng(0), dtype=np.float64)
    # Sharper attention than at initialisation: with tiny states the scores are nearly equal,
    # the gradient of w_query is about 1e-3, and central-difference noise (about 1e-10) would
    # already be 1e-7 of it.
    for name in ("w_query", "w_key", "v", "w"):
        if name in model.params:
            model.params[name] *= 4.0
    return model


CASES = [("bahdanau", "general"), ("luong", "dot"), ("luong", "general"), ("luong", "concat")]


@pytest.mark.parametrize(("kind", "score"), CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_reach_every_parameter(kind, score, masked):
    model = _model(kind, score)
    rng = np.random.default_rng(1)
    source = rng.integers(0, 10, size=(2, 4))
    target_in, _ = reverse_examples(source)
    mask = np.array([[True] * 4, [True, True, False, False]]) if masked else None
    errors = check_module_gradients(TeacherForced(model, 4, mask),
                                     np.concatenate([source, target_in], axis=1))
    assert errors["model.encoder.w_h"] > 0 and errors["model.source_embedding.weight"] > 0


@pytest.mark.parametrize(("kind", "score"), CASES)
def test_padding_gets_no_weight_and_does_not_change_the_output(kind, score):
    model = _model(kind, score)
    rng = np.random.default_rng(2)
    source = rng.integers(0, 10, size=(3, 5))
    target_in, _ = reverse_examples(source[:, :3])
    mask = np.zeros((3, 5), bool)
    mask[:, :3] = True
    logits = model.forward(source, target_in, mask)
    assert model.last_weights.shape == (3, 4, 5)
    assert np.all(model.last_weights[..., 3:] == 0)
    np.testing.assert_allclose(model.last_weights.sum(axis=-1), 1.0, rtol=1e-12)
    # Other padding tokens change the encoder's states there (and its final state), but the
    # attention still gives them no weight.
    changed = source.copy()
    changed[:, 3:] = (changed[:, 3:] + 1) % 10
    model.forward(changed, target_in, mask)
    assert np.all(model.last_weights[..., 3:] == 0)
    assert logits.shape == (3, 4, 12)


def test_a_fully_masked_source_gives_finite_logits():
    model = _model("bahdanau")
    source = np.zeros((1, 3), np.int64)
    logits = model.forward(source, np.zeros((1, 2), np.int64), np.zeros((1, 3), bool))
    assert np.all(np.isfinite(logits)) and np.all(model.last_weights == 0)


def test_greedy_decoding_shapes():
    for kind, score in CASES:
        model = _model(kind, score)
        source = np.random.default_rng(3).integers(0, 10, size=(2, 4))
        decoded = model.greedy_decode(source, 5)
        assert decoded.shape == (2, 5) and decoded.max() <= EOS
        assert model.last_weights.shape == (2, 5, 4)


def test_attention_learns_a_tiny_reverse_task(tmp_path):
    config = Seq2SeqAttentionConfig(lengths="5", models="luong", n_embd=16, n_hidden=32,
                                    attn_size=32, batch_size=32, steps=400, lr=1e-2,
                                    n_test=100)
    summary = run_seq2seq_attention(config, tmp_path)
    (row,) = summary["rows"]
    assert row["exact_match"] >= 0.9, row
    assert (tmp_path / "seq2seq.md").is_file() and (tmp_path / "exact_match.png").is_file()
    assert (tmp_path / "alignment_luong_L5.png").is_file()


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="unknown score 'cosine'"):
        AttentionSeq2SeqConfig(score="cosine")
    model = _model("luong")
    with pytest.raises(ValueError, match=r"source_mask must be a bool array of the source's "
                                          r"shape \(2, 4\)"):
        model.forward(np.zeros((2, 4), np.int64), np.zeros((2, 3), np.int64), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"target_in must be \(B, L\) with the source's B = 2"):
        model.forward(np.zeros((2, 4), np.int64), np.zeros((3, 3), np.int64))


def test_long_strings_get_a_task_too():
    task = reverse_task(np.random.default_rng(0), 32, 10)
    assert task.test_source.shape == (10, 32) and task.test_source.max() <= 9
    assert task.train_batch(np.random.default_rng(1), 4, 7).shape == (4, 7)
    assert reverse_task(np.random.default_rng(0), 8, 10).test_source.shape == (10, 8)
