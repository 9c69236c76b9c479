import json

import numpy as np
import pytest
import torch

from phase_07_gpt.model import GPT, GPTConfig
from phase_07_gpt.train import train
from phase_09_modern.research.failure_modes.calibration import (
    calibration,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from phase_09_modern.research.failure_modes.confident_errors import confident_errors
from phase_09_modern.research.failure_modes.experiment import (
    failure_markdown,
    run_failure_modes,
    size_configs,
)
from phase_09_modern.research.failure_modes.repetition import (
    longest_loop,
    ngram_repeats,
    repeated_ngram_rate,
    repetition_stats,
)
from phase_09_modern.research.failure_modes.scoring import (
    encode_known,
    mean_nll,
    next_token_logits,
    softmax,
)


def test_ece_of_calibrated_predictions_is_zero():
    # in each bin the accuracy equals the confidence exactly
    confidence = np.repeat([0.3, 0.5, 0.9], 10)
    correct = np.concatenate([[1] * 3 + [0] * 7, [1] * 5 + [0] * 5, [1] * 9 + [0] * 1])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_sampled_calibrated_predictions_is_small():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 200_000)
    correct = rng.uniform(0, 1, confidence.shape) < confidence
    assert expected_calibration_error(confidence, correct) < 0.005


def test_ece_of_overconfident_predictions_is_the_weighted_gap():
    # 20 predictions at 0.95 of which 12 right (gap 0.35); 10 at 0.6 of which 6 right (gap 0)
    confidence = np.array([0.95] * 20 + [0.6] * 10)
    correct = np.array([1] * 12 + [0] * 8 + [1] * 6 + [0] * 4)
    assert expected_calibration_error(confidence, correct) == pytest.approx(20 / 30 * 0.35)


def test_bins_are_equal_width_and_closed_on_the_right():
    table = reliability_bins(np.array([0.0, 1 / 15, 0.07, 1.0]), np.array([1, 1, 0, 1]), 15)
    assert table["count"][0] == 2 and table["count"][1] == 1 and table["count"][14] == 1
    assert len(table["edges"]) == 16
    assert table["accuracy"][5] is None
    with pytest.raises(ValueError, match="0, 1"):
        reliability_bins(np.array([1.2]), np.array([1]))


def test_the_temperature_fit_recovers_a_planted_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (20_000, 12))
    planted = 2.5
    probs = softmax(logits / planted)
    targets = (probs.cumsum(axis=1) > rng.uniform(0, 1, (len(probs), 1))).argmax(axis=1)
    fitted = fit_temperature(logits, targets)
    assert fitted == pytest.approx(planted, rel=0.05)
    assert mean_nll(logits, targets, fitted) < mean_nll(logits, targets, 1.0)


def test_temperature_scaling_repairs_overconfident_logits():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (20_000, 8))
    probs = softmax(logits)
    targets = (probs.cumsum(axis=1) > rng.uniform(0, 1, (len(probs), 1))).argmax(axis=1)
    result = calibration(3.0 * logits, targets)  # the model is 3 times too sharp
    assert result["temperature"] == pytest.approx(3.0, rel=0.08)
    assert result["ece"] > 0.1 > 0.02 > result["ece_scaled"]
    assert result["nll_scaled"] < result["nll"]


def test_ngram_repeats_on_hand_made_strings():
    assert ngram_repeats("abcd", 2) == (0, 3)
    assert ngram_repeats("abab", 2) == (1, 3)  # ab, ba, ab
    assert ngram_repeats("aaaaa", 4) == (1, 2)
    assert repeated_ngram_rate("the cat the cat the cat".split(), 3) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="no 3-gram"):
        repeated_ngram_rate(["a", "b"], 3)


def test_longest_loop_finds_back_to_back_copies():
    assert longest_loop("abcabcab") == (8, 3)
    assert longest_loop("xyz the the the q") == (13, 4)  # " the the the ": 3 units and a " "
    assert longest_loop("abcdef") == (0, 0)
    assert longest_loop("aab")[0] == 2
    stats = repetition_stats(["the king the king the king", "no repeats at all here"])
    assert stats["longest_loop"] > 10
    assert 0 < stats["word3_repeat"] < 1


def test_unknown_characters_are_counted_and_removed():
    ids, skipped = encode_known("ab—c…a", ["a", "b", "c"])
    assert ids.tolist() == [0, 1, 2, 0]
    assert skipped == {"—": 1, "…": 1}


def test_confident_errors_count_only_confident_wrong_predictions():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.02, 0.98]])
    targets = np.array([0, 1, 1, 0])
    found = confident_errors(probs, targets, ["x", "y"], threshold=0.9)
    assert found["count"] == 2 and found["rate"] == 0.5
    assert found["wrong_when_confident"] == pytest.approx(2 / 3)
    assert sorted(map(tuple, found["top_pairs"])) == [("x", "y", 1), ("y", "x", 1)]


def test_every_target_is_scored_once_with_its_own_context():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=8)).eval()
    ids = np.random.default_rng(0).integers(0, 5, 11)
    logits, targets, positions = next_token_logits(model, ids, batch=2)
    assert targets.tolist() == ids[1:].tolist()
    assert positions.tolist() == list(range(10))
    with torch.no_grad():  # prediction 9 reads ids[8:10], the start of the last window
        direct = model(torch.from_numpy(ids[8:10][None]))[0][0, -1].numpy()
    assert np.allclose(logits[9], direct, atol=1e-5)
    few, _, _ = next_token_logits(model, ids, max_tokens=4)
    assert len(few) == 4


def test_size_overrides_are_checked():
    train_config, failure = size_configs("small", 3, {"max_iters": 7, "prompts": 2})
    assert train_config.seed == 3 and train_config.max_iters == 7 and failure.prompts == 2
    with pytest.raises(ValueError, match="unknown override"):
        size_configs("small", 0, {"nonsense": 1})
    with pytest.raises(ValueError, match="unknown size"):
        size_configs("huge", 0)


def test_the_runner_writes_its_outputs_and_reuses_them(tmp_path):
    words = ["the king", "my lord", "good night", "sweet prince", "what news"]
    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, 6)) for _ in range(300)) + "\n",
                      encoding="utf-8")
    other = tmp_path / "other.txt"
    other.write_text("Quite another kind of text — with 3 digits.\n" * 20, encoding="utf-8")
    overrides = dict(data=str(corpus), block_size=16, n_layer=1, n_head=2, n_embd=16,
                     max_iters=4, eval_interval=2, eval_iters=1, batch_size=4, warmup_iters=1,
                     temperatures=[0.0, 1.0], prompts=2, prompt_chars=8, continuation_chars=40,
                     eval_tokens=400, shift=[str(other)], shift_tokens=200, examples=3)
    out = tmp_path / "run"
    train(size_configs("small", 0, overrides)[0], out / "model-seed0", stop_after=2, quiet=True)
    first = []  # seed 0's training was stopped after 2 of 4 steps: it is resumed
    result = run_failure_modes(out, size="small", seeds=2, overrides=overrides, log=first.append)
    assert [line for line in first if "training" in line] == [
        f"training {out / 'model-seed0'} (4 steps, resumed)",
        f"training {out / 'model-seed1'} (4 steps)"]
    for name in ("results.json", "results.md", "repetition.png", "reliability.png",
                 "loss_per_corpus.png", "confident_errors-seed0.txt", "samples-seed1.txt",
                 "model-seed1/ckpt.pt"):
        assert (out / name).is_file(), name
    table = result["table"]
    assert set(table["repetition"]) == {"greedy", "T = 1", "real text"}
    assert table["shift"][str(other)]["skipped_share"][0] > 0  # "—", "Q", digits are unknown
    assert table["shift"]["shakespeare val"]["skipped_share"] == [0.0, 0.0]
    assert len(table["calibration"]["ece"]) == 2
    assert 0 <= table["shift"][str(other)]["ece"][0] <= 1
    assert "| greedy |" in failure_markdown(result)

    (out / "seed0.json").unlink()  # seed 0 is measured again on its saved model, seed 1 reused
    said = []
    again = run_failure_modes(out, size="small", seeds=2, overrides=overrides, log=said.append)
    assert not any("training" in line for line in said)  # the models are not trained again
    timing = ("measure_seconds",)
    assert [{k: v for k, v in run.items() if k not in timing} for run in again["runs"]] == \
        [{k: v for k, v in run.items() if k not in timing} for run in result["runs"]]
    assert again["runs"][1] == result["runs"][1]  # seed 1 read back from its file
    assert again["runs"] == json.loads((out / "results.json").read_text())["runs"]
