import json
import math

import numpy as np
import pytest
import torch

from phase_07_gpt.presets import TrainConfig
from phase_09_modern.models.llama import apply_rope, rope_cache
from phase_09_modern.ops.alibi import alibi_bias
from phase_09_modern.research.extrapolation import (
    ENCODINGS,
    SINUSOID_RMS,
    attention_entropy,
    evaluate_lengths,
    evaluation_windows,
    position_gpt,
    run_extrapolation,
    size_config,
)
from phase_09_modern.research.runner import main

TINY = TrainConfig(block_size=8, n_layer=2, n_head=4, n_embd=16, batch_size=4, max_iters=4,
                   warmup_iters=1, eval_interval=2, eval_iters=2, device="cpu", threads=1)
VOCAB = 11


def model_for(encoding: str, max_len: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    return position_gpt(TINY, VOCAB, encoding, max_len).eval()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_fused_and_the_plain_attention_paths_agree(encoding):
    model = model_for(encoding)
    x = torch.randint(0, VOCAB, (2, 32))  # four times the training context
    fused, _ = model(x)
    plain = model.inspect(x)
    assert torch.allclose(fused, plain["logits"], atol=1e-5)
    for weights in plain["attention"]:
        assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 32))
        assert torch.all(weights.triu(1) == 0)  # causal


def test_alibi_scores_get_phase_9s_bias():
    attention = model_for("alibi").transformer.h[0].attn
    bias = attention.score_bias(6, torch.device("cpu")).double().numpy()
    expected = alibi_bias(4, 6, 6)
    below = np.tril(np.ones((6, 6), dtype=bool))
    np.testing.assert_allclose(bias[:, below], expected[:, below], rtol=1e-6)
    assert np.all(np.isneginf(bias[:, ~below]))


def test_rope_turns_queries_and_keys_by_their_position():
    # Feed the attention one vector at every position: with RoPE the scores then depend on
    # i - j only, so the weights of query i over keys j = 0..i equal those of the plain
    # scores computed from the turned q and k.
    attention = model_for("rope").transformer.h[0].attn
    x = torch.randn(1, 1, 16).expand(1, 10, 16)
    _, weights = attention(x, need_weights=True)
    q, k, _ = attention.c_attn(x).split(16, dim=2)
    q, k = (a.view(1, 10, 4, 4).transpose(1, 2) for a in (q, k))
    cos, sin = rope_cache(10, 4, 10000.0)
    scores = apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-2, -1) / 2.0
    for i in range(10):
        assert torch.allclose(weights[0, :, i, : i + 1], scores[0, :, i, : i + 1].softmax(-1),
                              atol=1e-6)
    offsets = scores[0, 0]  # the same vector everywhere: the score is a function of i - j
    assert torch.allclose(offsets[5, 2], offsets[9, 6], atol=1e-5)


def test_only_learned_and_sinusoidal_add_a_position_table():
    learned, sinusoidal = model_for("learned"), model_for("sinusoidal")
    assert learned.transformer.wpe.weight.shape == (32, 16)
    table = sinusoidal.transformer.wpe.table
    assert table.pow(2).mean().sqrt().item() == pytest.approx(SINUSOID_RMS, rel=1e-5)
    assert table.requires_grad is False
    counts = {e: model_for(e).num_params(non_embedding=False) for e in ENCODINGS}
    assert counts["learned"] - counts["none"] == 32 * 16
    assert len({counts[e] for e in ("sinusoidal", "rope", "alibi", "none")}) == 1


def test_training_at_the_short_context_leaves_the_far_position_rows_without_gradient():
    model = model_for("learned").train()
    x = torch.randint(0, VOCAB, (3, TINY.block_size))
    _, loss = model(x, torch.randint(0, VOCAB, (3, TINY.block_size)))
    loss.backward()
    grad = model.transformer.wpe.weight.grad
    assert grad[: TINY.block_size].abs().sum() > 0
    assert torch.all(grad[TINY.block_size:] == 0)


def test_windows_cover_the_same_tokens_at_every_length():
    tokens = torch.arange(100)
    windows = evaluation_windows(tokens, (8, 16, 32))
    for length, (x, y) in windows.items():
        assert x.shape == (96 // length, length)  # 96 predicted tokens = 3 windows of 32
        assert torch.equal(x.flatten(), tokens[:96]) and torch.equal(y.flatten(), tokens[1:97])
    assert evaluation_windows(tokens, (8, 16), max_tokens=40)[8][0].shape == (4, 8)
    with pytest.raises(ValueError, match="fewer than one window"):
        evaluation_windows(torch.arange(20), (8, 32))


def test_the_length_evaluation_is_the_models_own_loss():
    model = model_for("rope")
    tokens = torch.randint(0, VOCAB, (200,))
    result = evaluate_lengths(model, tokens, (8, 32), batch_tokens=40)
    for length in (8, 32):
        x, y = evaluation_windows(tokens, (8, 32))[length]
        expected = model(x, y)[1].item()
        assert result[str(length)]["loss"] == pytest.approx(expected, rel=1e-5)
        assert np.mean(result[str(length)]["loss_by_position"]) == \
            pytest.approx(expected, rel=1e-5)
        assert len(result[str(length)]["entropy_by_position"]) == length
        assert len(result[str(length)]["entropy_by_layer"]) == TINY.n_layer
    # the first query sees one key: its attention has entropy 0
    assert result["32"]["entropy_by_position"][0] == pytest.approx(0.0, abs=1e-9)


def test_attention_entropy_of_uniform_and_one_hot_weights():
    uniform = torch.full((5,), 0.2, dtype=torch.float64)
    assert attention_entropy(uniform).item() == pytest.approx(math.log(5))
    assert attention_entropy(torch.tensor([0.0, 1.0, 0.0])).item() == 0.0


def test_bad_settings_fail_clearly():
    with pytest.raises(ValueError, match="encoding must be one of"):
        position_gpt(TINY, VOCAB, "fourier", 32)
    with pytest.raises(ValueError, match="max_len"):
        position_gpt(TINY, VOCAB, "rope", 4)
    with pytest.raises(ValueError, match="must not be shorter"):
        size_config("small", {"eval_lengths": (16, 64)})
    with pytest.raises(ValueError, match="unknown size"):
        size_config("huge")
    with pytest.raises(ValueError, match="unknown encoding"):
        run_extrapolation("unused", only=["fourier"])
    with pytest.raises(ValueError, match="longer than the context"):
        model_for("alibi", max_len=16)(torch.zeros(1, 17, dtype=torch.long))


SMOKE = {"max_iters": 6, "eval_interval": 3, "eval_iters": 2, "n_layer": 1, "n_embd": 32,
         "batch_size": 4, "warmup_iters": 2, "eval_tokens": 2048}


def test_the_small_preset_runs_end_to_end_and_reuses_finished_runs(tmp_path, capsys):
    result = run_extrapolation(tmp_path, size="small", seeds=2, overrides=SMOKE,
                               log=lambda *_: None)
    assert [row["encoding"] for row in result["table"]] == list(ENCODINGS)
    for row in result["table"]:
        for length in ("32", "64", "128"):
            mean, spread = row["loss"][length]
            assert 0 < mean < 6 and spread >= 0
    for name in ("results.md", "loss_vs_length.png", "loss_by_position.png",
                 "entropy_by_position.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| ALiBi |" in (tmp_path / "results.md").read_text()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["table"] == json.loads(json.dumps(result["table"]))
    # a finished run is read back, not trained again
    again = run_extrapolation(tmp_path, size="small", seeds=1, only=["alibi"], overrides=SMOKE,
                              log=lambda *_: None)
    first = next(r for r in result["runs"] if r["encoding"] == "alibi" and r["seed"] == 0)
    assert again["runs"][0]["seconds"] == first["seconds"]
    # another config trains again from scratch instead of resuming the old checkpoint
    changed = run_extrapolation(tmp_path, size="small", seeds=1, only=["alibi"],
                                overrides={**SMOKE, "max_iters": 3}, log=lambda *_: None)
    assert changed["runs"][0]["train"]["steps"] == 3


def test_the_command_runs_the_extrapolation_experiment(tmp_path, capsys):
    assert main(["extrapolation", "--seeds", "1", "--only", "none", "--max-steps", "2",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| none (NoPE) |" in out and "entropy at 128" in out
    assert main(["extrapolation", "--only", "fourier", "--out", str(tmp_path)]) == 2
    assert "unknown encoding" in capsys.readouterr().err
