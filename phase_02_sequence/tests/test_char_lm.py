"""The character LM: gradients, sampling, errors, and a resumed run that equals an uninterrupted
one to the bit."""

import numpy as np
import pytest

from phase_01_nn.module import check_module_gradients
from phase_01_nn.vocabulary import CharVocabulary
from phase_02_sequence.char_lm import (
    CharLM,
    CharLMConfig,
    CharLMTrainConfig,
    CharLMTraining,
    evaluate,
    sample,
)

TEXT = ("First Citizen: Before we proceed any further, hear me speak.\n"
        "All: Speak, speak.\nFirst Citizen: You are all resolved rather to die than to famish?\n")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_char_lm_gradients(cell):
    rng = np.random.default_rng(0)
    config = CharLMConfig(vocab_size=7, cell=cell, n_layer=2, n_embd=3, n_hidden=4)
    model = CharLM(config, rng=rng, dtype=np.float64)
    errors = check_module_gradients(model, rng.integers(0, 7, size=(2, 5)))
    assert "embedding.weight" in errors and "core.1.w_h" in errors and "head.w" in errors


def test_sampling_is_reproducible_and_checks_the_prompt():
    vocab = CharVocabulary.from_text(TEXT)
    model = CharLM(CharLMConfig(vocab_size=len(vocab), n_hidden=8), rng=np.random.default_rng(0))
    a = sample(model, vocab, "First", 30, np.random.default_rng(5), temperature=0.8)
    b = sample(model, vocab, "First", 30, np.random.default_rng(5), temperature=0.8)
    assert a == b and a.startswith("First") and len(a) == 35
    with pytest.raises(ValueError, match=r"characters \['Z', 'q'\] of 'Zq' are not in the voc"):
        sample(model, vocab, "Zq", 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="the prompt is empty"):
        sample(model, vocab, "", 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        sample(model, vocab, "F", 5, np.random.default_rng(0), temperature=0)


def test_config_errors():
    with pytest.raises(ValueError, match="unknown cell 'lstn'"):
        CharLMConfig(vocab_size=5, cell="lstn")
    with pytest.raises(ValueError, match="CharLMConfig.n_hidden must be >= 1, got 0"):
        CharLMConfig(vocab_size=5, n_hidden=0)


TINY = CharLMTrainConfig(n_embd=4, n_hidden=8, batch_size=3, seq_len=8, steps=12, lr=1e-2,
                         warmup_steps=2, weight_decay=0.1, seed=3)


def _data():
    vocab = CharVocabulary.from_text(TEXT)
    return vocab.encode(TEXT), vocab


def test_training_lowers_the_loss():
    ids, vocab = _data()
    run = CharLMTraining(CharLMTrainConfig(**{**TINY.__dict__, "steps": 60}), ids, vocab)
    before = evaluate(run.model, ids, batch_size=3, seq_len=8)
    losses = [run.train_step() for _ in range(60)]
    assert evaluate(run.model, ids, batch_size=3, seq_len=8) < before - 0.5
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_resume_continues_the_identical_run(tmp_path):
    ids, vocab = _data()
    straight = CharLMTraining(TINY, ids, vocab)
    straight_losses = [straight.train_step() for _ in range(TINY.steps)]

    first = CharLMTraining(TINY, ids, vocab)
    losses = [first.train_step() for _ in range(5)]
    first.save(tmp_path / "ckpt.npz")
    del first
    resumed = CharLMTraining.load(tmp_path / "ckpt.npz", ids)
    losses += [resumed.train_step() for _ in range(TINY.steps - 5)]

    assert losses == straight_losses  # every loss, to the bit
    for name, value in straight.model.parameters().items():
        np.testing.assert_array_equal(resumed.model.parameters()[name], value)
    assert resumed.batches.position == straight.batches.position
    assert resumed.rng.random() == straight.rng.random()


def test_resume_refuses_other_data(tmp_path):
    ids, vocab = _data()
    run = CharLMTraining(TINY, ids, vocab)
    run.train_step()
    run.save(tmp_path / "ckpt.npz")
    with pytest.raises(ValueError, match=r"trained on other data \(\d+ tokens, SHA-256"):
        CharLMTraining.load(tmp_path / "ckpt.npz", ids[:-1])
    same_length = ids.copy()
    same_length[[0, 1]] = same_length[[1, 0]] if ids[0] != ids[1] else (ids[0], ids[0] + 1)
    with pytest.raises(ValueError, match="trained on other data"):
        CharLMTraining.load(tmp_path / "ckpt.npz", same_length)


def test_non_finite_loss_stops_before_the_update():
    ids, vocab = _data()
    run = CharLMTraining(TINY, ids, vocab)
    run.model.head.params["w"][0, 0] = np.inf
    before = {k: v.copy() for k, v in run.model.parameters().items()}
    with np.errstate(invalid="ignore", over="ignore"), \
            pytest.raises(FloatingPointError, match="step 0: the loss became (nan|inf)"):
        run.train_step()
    for name, value in run.model.parameters().items():
        np.testing.assert_array_equal(value, before[name])
    assert run.step == 0
