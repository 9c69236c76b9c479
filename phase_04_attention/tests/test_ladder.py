"""The ladder: every rung's gradients, causality, a tiny ladder end to end, the heatmap, the CLI."""

import json

import numpy as np
import pytest

from phase_01_nn.module import Module, check_module_gradients
from phase_04_attention.__main__ import main
from phase_04_attention.heatmap import draw_heatmap, prompt_attention
from phase_04_attention.ladder import RUNGS, LadderConfig, LadderModel, load_model, run_ladder

TEXT = "the cat sat on the mat. the dog sat on the log. " * 60
TINY = dict(n_embd=8, n_head=2, n_layer=2, block_size=8, batch_size=4, steps=30, eval_every=10,
            eval_windows=16, warmup_steps=5)


class Logits(Module):
    """ids -> logits, wrapping a rung so that ``check_module_gradients`` sees its parameters."""

    def __init__(self, model: LadderModel) -> None:
        super().__init__()
        self.add_module("model", model)

    def forward(self, ids):
        return self.modules["model"].forward(ids)

    def backward(self, dout):
        self.modules["model"].backward(dout)


@pytest.mark.parametrize("rung", range(1, len(RUNGS) + 1))
def test_every_rung_gradients(rung):
    config = LadderConfig(n_embd=4, n_head=2, n_layer=2, block_size=4)
    model = LadderModel(rung, 5, config, rng=np.random.default_rng(rung), dtype=np.float64)
    for value in model.parameters().values():  # weights of order 1, so no gradient is tiny
        value += 0.3 * np.random.default_rng(0).standard_normal(value.shape)
    ids = np.random.default_rng(1).integers(0, 5, size=(2, 4))
    errors = check_module_gradients(Logits(model), ids, tol=1e-5)
    assert len(errors) == len(model.parameters())


@pytest.mark.parametrize("rung", [2, 6])
def test_changing_future_characters_leaves_earlier_logits_alone(rung):
    model = LadderModel(rung, 7, LadderConfig(**TINY), rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 7, size=(3, 8))
    logits = model.forward(ids)
    changed = ids.copy()
    changed[:, 5:] = (changed[:, 5:] + 3) % 7
    np.testing.assert_array_equal(model.forward(changed)[:, :5], logits[:, :5])
    assert not np.array_equal(model.forward(changed)[:, 5:], logits[:, 5:])


def test_a_tiny_ladder_runs_end_to_end(tmp_path):
    summary = run_ladder(LadderConfig(**TINY), tmp_path, text=TEXT)
    rows = summary["rows"]
    assert [r["name"] for r in rows] == list(RUNGS)
    assert all(np.isfinite(r["val_loss"]) and r["val_loss"] < np.log(len(set(TEXT)))
               for r in rows)
    assert rows[0]["parameters"] == len(set(TEXT)) ** 2
    for name in ("ladder.md", "ladder.json", "ladder.png", "metrics.jsonl", "summary.json",
                 "checkpoint.npz"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "ladder.json").read_text())[5]["name"] == "layer_norm"
    model, tokenizer = load_model(tmp_path / "checkpoint.npz")
    assert model.rung == 6
    weights = prompt_attention(model, np.asarray(tokenizer.encode("the cat"), np.int64), 1)
    assert weights.shape == (2, 7, 7)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(weights, k=1) == 0)
    assert draw_heatmap(weights, "the cat", tmp_path / "h.png", "t").is_file()


def test_command_line_ladder_then_heatmap(tmp_path, capsys):
    data = tmp_path / "tiny.txt"
    data.write_text(TEXT, encoding="utf-8")
    options = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(["ladder", "--rungs", "1,6", "--data", str(data), "--out", str(tmp_path),
                 *options]) == 0
    assert "| 6 | layer_norm |" in capsys.readouterr().out
    assert main(["heatmap", "--checkpoint", str(tmp_path / "checkpoint.npz"), "--prompt",
                 "the dog", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "heatmap_layer0.png").is_file()
    assert main(["heatmap", "--checkpoint", str(tmp_path / "checkpoint.npz"), "--prompt",
                 "THE DOG", "--out", str(tmp_path)]) == 2
    assert "not in the vocabulary" in capsys.readouterr().err


def test_config_errors():
    with pytest.raises(ValueError, match="n_embd = 10 is not divisible by n_head = 4"):
        LadderConfig(n_embd=10)
    with pytest.raises(ValueError, match="rungs must list numbers from 1 to 6"):
        LadderConfig(rungs="0,7")
    model = LadderModel(2, 5, LadderConfig(**TINY), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"1 <= T <= block_size = 8, got \(1, 9\)"):
        model.forward(np.zeros((1, 9), np.int64))
