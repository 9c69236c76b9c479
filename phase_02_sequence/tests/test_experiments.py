"""Smoke tests of the four experiments at tiny sizes (seconds), and of their data."""

import json

import numpy as np
import pytest

from phase_02_sequence.__main__ import main
from phase_02_sequence.adding import (
    ADDING_BASELINE,
    AddingConfig,
    SequenceRegressor,
    adding_batch,
    run_adding,
)
from phase_02_sequence.experiments import Seq2SeqRunConfig, run_seq2seq
from phase_02_sequence.rnn import RNN
from phase_02_sequence.vanishing import VanishingConfig, run_vanishing, state_gradient_norms

TEXT = "".join(f"{name}: the quick brown fox jumps over the lazy dog.\n"
               for name in ("ROMEO", "JULIET", "NURSE", "FRIAR")) * 20


def test_adding_batch_marks_one_value_in_each_half():
    x, y = adding_batch(np.random.default_rng(0), 500, 10)
    markers = x[..., 1]
    assert x.shape == (500, 10, 2) and y.shape == (500, 1)
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :5].sum(axis=1) == 1)
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    assert abs(np.mean((y - 1.0) ** 2) - ADDING_BASELINE) < 0.03
    with pytest.raises(ValueError, match="length >= 2, got 1"):
        adding_batch(np.random.default_rng(0), 1, 1)


def test_regressor_gradients():
    from phase_01_nn.module import check_module_gradients

    rng = np.random.default_rng(0)
    model = SequenceRegressor("lstm", 2, 3, rng=rng, dtype=np.float64)
    check_module_gradients(model, rng.standard_normal((2, 4, 2)))


def test_gradient_norm_starts_at_one_and_shrinks_for_a_small_rnn():
    rng = np.random.default_rng(0)
    layer = RNN(2, 5, rng=rng)
    norms = state_gradient_norms(layer, rng.standard_normal((3, 6, 2)).astype(np.float32), rng)
    assert norms.shape == (7,) and norms[0] == 1.0
    assert norms[-1] < norms[0]  # small weights: the gradient shrinks with distance


def test_adding_run_writes_both_curves(tmp_path):
    config = AddingConfig(lengths="6", hidden=4, steps=20, eval_every=10, n_test=50)
    summary = run_adding(config, tmp_path)
    assert set(summary["runs"]) == {"lstm_T6", "rnn_T6"}
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert [(r["cell"], r["step"]) for r in rows] == [("lstm", 10), ("lstm", 20), ("rnn", 10),
                                                      ("rnn", 20)]
    assert (tmp_path / "adding_T6.png").is_file()


def test_vanishing_run(tmp_path):
    summary = run_vanishing(VanishingConfig(length=8, hidden=4, batch=4, train_length=6,
                                            train_steps=10), tmp_path)
    assert summary["rnn_init"]["norm_at_8"] < summary["rnn_init"]["norm_at_1"]
    assert (tmp_path / "vanishing.png").is_file()


def test_seq2seq_run(tmp_path):
    config = Seq2SeqRunConfig(n_embd=4, n_hidden=8, max_length=3, test_length=3, n_test=50,
                              batch_size=16, steps=20, eval_every=10)
    summary = run_seq2seq(config, tmp_path)
    assert 0.0 <= summary["test_exact_match"] <= 1.0 and summary["steps"] == 20
    assert (tmp_path / "exact_match.png").is_file()


def test_charlm_cli_trains_stops_and_resumes(tmp_path, capsys):
    data = tmp_path / "shakespeare.txt"
    data.write_text(TEXT, encoding="utf-8")
    common = ["charlm", "--data", str(data), "--out", str(tmp_path / "run"), "--n-hidden", "8",
              "--n-embd", "4", "--batch-size", "2", "--seq-len", "8", "--eval-every", "4",
              "--eval-seq-len", "8", "--sample-chars", "20", "--warmup-steps", "2"]
    assert main([*common, "--steps", "8"]) == 0
    assert "validation loss" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [4, 8]
    assert main([*common, "--resume"]) == 0  # already at its last step: nothing left to do
    assert "resumed from" in capsys.readouterr().out
    for name in ("checkpoint.npz", "loss.png", "sample.txt", "summary.json"):
        assert (tmp_path / "run" / name).is_file()


def test_charlm_cli_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    data = tmp_path / "shakespeare.txt"
    data.write_text(TEXT, encoding="utf-8")
    code = main(["charlm", "--data", str(data), "--out", str(tmp_path / "none"), "--resume"])
    assert code == 2
    assert "no checkpoint at" in capsys.readouterr().err
