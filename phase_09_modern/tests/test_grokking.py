import json

import numpy as np
import pytest
import torch

from phase_01_nn.metrics import read_metrics
from phase_09_modern.research.grokking import (
    GrokConfig,
    ModularTransformer,
    discrete_log_order,
    embedding_spectrum,
    fourier_spectrum,
    key_frequencies,
    modular_dataset,
    primitive_root,
    train_grokking,
)
from phase_09_modern.research.runner import main, run_grokking


@pytest.mark.parametrize("op", ["add", "div"])
def test_the_tables_are_right_and_split_without_overlap(op):
    p = 7
    (train_x, train_y), (val_x, val_y) = modular_dataset(op, p, 0.4, seed=3)
    tokens = torch.cat([train_x, val_x]).numpy()
    answers = torch.cat([train_y, val_y]).numpy()
    a, b = tokens[:, 0], tokens[:, 1]
    if op == "add":
        assert np.all(answers == (a + b) % p)
    else:
        assert np.all(b != 0) and np.all((answers * b) % p == a)  # answer = a / b
    assert np.all(tokens[:, 2] == p)  # the "=" token
    assert len({tuple(t) for t in tokens}) == len(tokens) == (p * p if op == "add" else p * (p - 1))
    assert len(train_x) == round(0.4 * len(tokens))


def test_the_model_reads_the_answer_at_the_last_position_only():
    torch.manual_seed(0)
    model = ModularTransformer(p=11, d_model=16, n_head=2, d_mlp=32, dropout=0.0)
    tokens = torch.tensor([[3, 5, 11], [4, 5, 11]])
    logits = model(tokens)
    assert logits.shape == (2, 11)
    assert not torch.equal(logits[0], logits[1])  # the first operand reaches the output


def test_the_fourier_spectrum_finds_the_frequencies_an_embedding_is_built_from():
    p, d = 23, 6
    x = np.arange(p)[:, None]
    rng = np.random.default_rng(0)
    embedding = (np.cos(2 * np.pi * 4 * x / p + rng.uniform(0, 6, d))
                 + 0.5 * np.sin(2 * np.pi * 9 * x / p + rng.uniform(0, 6, d)))
    spectrum = fourier_spectrum(embedding)
    assert spectrum.shape == (p // 2 + 1,)
    assert spectrum.sum() == pytest.approx(1.0)
    assert key_frequencies(spectrum) == [4, 9]
    assert spectrum[4] == pytest.approx(0.8, abs=1e-9)  # energies 1 : 0.25


def test_discrete_logs_turn_division_into_addition():
    assert [primitive_root(p) for p in (7, 23, 97, 113)] == [3, 5, 5, 3]
    p = 23
    order = discrete_log_order(p)
    assert sorted(order) == list(range(1, p))
    log = {int(r): i for i, r in enumerate(order)}
    for a in range(1, p):
        for b in range(1, p):
            quotient = a * pow(b, p - 2, p) % p
            assert log[quotient] == (log[a] - log[b]) % (p - 1)


def test_the_division_spectrum_is_read_along_the_discrete_logs():
    p, k = 23, 5
    order = discrete_log_order(p)
    embedding = np.zeros((p, 6))
    angle = 2 * np.pi * k * np.arange(p - 1) / (p - 1)
    embedding[order, 0], embedding[order, 1] = np.cos(angle), np.sin(angle)
    spectrum = embedding_spectrum(embedding, "div")
    assert spectrum.shape == ((p - 1) // 2 + 1,) and spectrum.sum() == pytest.approx(1.0)
    assert key_frequencies(spectrum) == [k] and spectrum[k] == pytest.approx(1.0)
    assert len(key_frequencies(embedding_spectrum(embedding, "add"))) > 1  # diffuse that way
    nyquist = np.cos(np.pi * np.arange(8))[:, None]  # even length: k = n / 2 has no mirror
    assert fourier_spectrum(nyquist)[4] == pytest.approx(1.0)


def test_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match="prime"):
        GrokConfig(p=12)
    with pytest.raises(ValueError, match="divisible"):
        GrokConfig(d_model=30, n_head=4)
    with pytest.raises(ValueError, match="train_fraction"):
        GrokConfig(train_fraction=1.0)
    with pytest.raises(ValueError, match="op must be"):
        GrokConfig(op="mul")


TINY = dict(p=11, train_fraction=0.5, d_model=16, n_head=2, d_mlp=32, lr=1e-2,
            eval_interval=5, stop_after_grok=0, weight_noise=0.01, decay_to_init=True,
            dropout=0.1)


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole = train_grokking(GrokConfig(**TINY, max_steps=20), tmp_path / "whole", quiet=True)
    train_grokking(GrokConfig(**TINY, max_steps=20), tmp_path / "split", quiet=True)
    # stop "mid-run": rewind the split run's checkpoint to step 10 by training only that far
    train_grokking(GrokConfig(**TINY, max_steps=10), tmp_path / "short", quiet=True)
    short = torch.load(tmp_path / "short" / "ckpt.pt", weights_only=True)
    short["config"]["max_steps"] = 20
    torch.save(short, tmp_path / "split" / "ckpt.pt")
    resumed = train_grokking(GrokConfig(**TINY, max_steps=20), tmp_path / "split", quiet=True,
                             resume=True)
    assert read_metrics(tmp_path / "split" / "metrics.jsonl") == \
        read_metrics(tmp_path / "whole" / "metrics.jsonl")
    assert resumed["spectrum"] == whole["spectrum"]


def test_resuming_another_config_or_nothing_fails_clearly(tmp_path):
    train_grokking(GrokConfig(**TINY, max_steps=5), tmp_path, quiet=True)
    with pytest.raises(ValueError, match="another config"):
        train_grokking(GrokConfig(**{**TINY, "lr": 3e-3}, max_steps=5), tmp_path, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_grokking(GrokConfig(**TINY, max_steps=5), tmp_path / "none", resume=True)


def test_the_small_preset_memorises_first_and_generalises_much_later(tmp_path):
    result = run_grokking(tmp_path, size="small", seeds=1, log=lambda *_: None, quiet=True,
                          only=["baseline (weight decay 1)", "fraction 0.8"])
    baseline = result["runs"][0]
    assert baseline["train_99_at"] is not None and baseline["val_99_at"] is not None
    assert baseline["val_99_at"] >= 5 * baseline["train_99_at"]  # grokking, not plain learning
    assert [row["condition"] for row in result["table"]] == ["baseline (weight decay 1)",
                                                             "fraction 0.8"]
    assert json.loads((tmp_path / "results.json").read_text())["table"] == \
        json.loads(json.dumps(result["table"]))
    for name in ("results.md", "accuracy.png", "spectrum.png"):
        assert (tmp_path / name).stat().st_size > 0
    again = run_grokking(tmp_path, size="small", seeds=1, log=lambda *_: None, quiet=True,
                         only=["fraction 0.8"])  # finished runs are read, not trained again
    assert again["runs"][0]["seconds"] == result["runs"][1]["seconds"]


def test_the_command_rejects_an_unknown_condition(capsys, tmp_path):
    assert main(["grokking", "--only", "nonsense", "--out", str(tmp_path)]) == 2
    assert "unknown condition" in capsys.readouterr().err


def test_grokking_options_apply_to_grokking_only(capsys, tmp_path):
    assert main(["spiking", "--only", "x", "--out", str(tmp_path)]) == 2
    assert "apply to the grokking experiment" in capsys.readouterr().err
    assert main(["extrapolation", "--op", "div", "--out", str(tmp_path)]) == 2
    assert "apply to the grokking experiment" in capsys.readouterr().err


def test_division_and_the_fraction_reach_the_config(tmp_path):
    assert main(["grokking", "--op", "div", "--fraction", "0.7", "--seeds", "1",
                 "--max-steps", "2", "--only", "baseline (weight decay 1)",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["task"] == "a / b mod 23"
    assert result["runs"][0]["config"]["train_fraction"] == 0.7


def test_the_command_lists_every_experiment(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    for name in ("extrapolation", "grokking", "spiking", "failure-modes"):
        assert name in usage


def test_a_condition_equal_to_the_baseline_runs_once_and_says_so(tmp_path):
    said = []
    result = run_grokking(tmp_path, size="small", seeds=1, log=said.append, quiet=True,
                          only=["baseline (weight decay 1)", "fraction 0.6", "fraction 0.8"],
                          overrides={"max_steps": 2})
    assert [row["condition"] for row in result["table"]] == [
        "baseline (weight decay 1) = fraction 0.6", "fraction 0.8"]
    assert len(result["runs"]) == 2
    assert any("the same config as the baseline" in line for line in said)
    assert not any("None" in line for line in said)  # a level not reached reads 'not reached'
    assert any("val 99% not reached" in line for line in said)
