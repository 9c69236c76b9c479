import copy
import json
import math

import pytest
import torch

from phase_07_gpt.model import GPT, GPTConfig
from phase_09_modern.models.preference import (
    completion_logprob,
    dpo_loss,
    main,
    preference_pairs,
    vowel_share,
)


def _model(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=12, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    logps = torch.randn(4, 9, dtype=torch.float64) * 10
    loss, r_w, r_l = dpo_loss(logps[0], logps[1], logps[0], logps[1], beta=0.5)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-15)
    assert torch.equal(r_w, torch.zeros(9, dtype=torch.float64)) and torch.equal(r_l, r_w)
    model = _model()
    reference = copy.deepcopy(model)
    seqs = torch.randint(0, 12, (2, 6, 14))
    loss, _, _ = dpo_loss(completion_logprob(model, seqs[0], 5),
                          completion_logprob(model, seqs[1], 5),
                          completion_logprob(reference, seqs[0], 5),
                          completion_logprob(reference, seqs[1], 5))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)


def test_dpo_loss_matches_its_formula_and_pushes_the_right_way():
    pw, pl, rw, rl = (torch.tensor([v], dtype=torch.float64, requires_grad=True)
                      for v in (-3.0, -5.0, -4.0, -4.5))
    loss, r_w, r_l = dpo_loss(pw, pl, rw, rl, beta=0.2)
    margin = 0.2 * ((-3.0 + 4.0) - (-5.0 + 4.5))
    assert loss.item() == pytest.approx(math.log1p(math.exp(-margin)), rel=1e-12)
    assert r_w.item() == pytest.approx(0.2) and r_l.item() == pytest.approx(-0.1)
    loss.backward()
    assert pw.grad.item() < 0 < pl.grad.item()  # descent raises chosen, lowers rejected
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_loss(pw, pl, rw, rl, beta=0.0)


def test_completion_logprob_sums_one_step_at_a_time():
    model = _model()
    seqs = torch.randint(0, 12, (3, 12))
    expected = torch.zeros(3)
    with torch.no_grad():
        for t in range(4, 12):  # prompt of 4 tokens, completion of 8
            expected += model(seqs[:, :t])[0][:, -1].log_softmax(-1).gather(
                1, seqs[:, t:t + 1])[:, 0]
        torch.testing.assert_close(completion_logprob(model, seqs, 4), expected)


def test_dpo_steps_raise_the_chosen_completions():
    model = _model(1)
    reference = copy.deepcopy(model).requires_grad_(False)
    chosen, rejected = torch.randint(0, 12, (2, 16, 12))
    with torch.no_grad():
        ref = (completion_logprob(reference, chosen, 4), completion_logprob(reference, rejected, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(15):
        loss, r_w, r_l = dpo_loss(completion_logprob(model, chosen, 4),
                                  completion_logprob(model, rejected, 4), *ref)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6)
    assert losses[-1] < 0.6 and (r_w > r_l).float().mean() > 0.8


def test_vowel_share():
    assert vowel_share("Aeb!") == pytest.approx(2 / 3)
    assert vowel_share("  ,") == 0.0


class _Chars:
    def decode(self, ids):
        return "".join("aeioubcdfghj"[i] for i in ids)


def test_pairs_are_ordered_by_the_property():
    chosen, rejected = preference_pairs(_model(), _Chars(), torch.randint(0, 12, (40, 3)), 8,
                                        seed=0)
    assert 0 < len(chosen) == len(rejected) <= 40
    for w, l in zip(chosen, rejected, strict=True):
        assert vowel_share(_Chars().decode(w[3:].tolist())) > \
            vowel_share(_Chars().decode(l[3:].tolist()))
        assert torch.equal(w[:3], l[:3])


def test_tiny_demo_runs_and_starts_at_ln2(tmp_path, capsys):
    corpus = tmp_path / "text.txt"
    corpus.write_text("".join(f"The {i} quick brown foxes are in our area. " for i in range(400)),
                      encoding="utf-8")
    assert main(["--preset", "tiny", "--data", str(corpus), "--out", str(tmp_path / "run"),
                 "--steps", "6", "--beta", "0.2"]) == 0
    result = json.loads((tmp_path / "run" / "dpo_demo.json").read_text())
    assert (result["steps"], result["beta"], result["lr"]) == (6, 0.2, 1e-3)
    assert result["before"]["dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert result["before"]["preference_accuracy"] == 0.5
    assert result["after"]["dpo_loss"] != result["before"]["dpo_loss"]
    assert result["before"]["lm_val_loss"] > 0
    assert [len(prompt) for prompt, _ in result["after"]["samples"]] == [8, 8, 8]
    assert "| win_rate |" in capsys.readouterr().out
