import json
from dataclasses import replace

import pytest

from phase_07_gpt.experiment import (
    EXPERIMENTS,
    SIZES,
    condition_config,
    count_spikes,
    run_experiment,
)
from phase_07_gpt.presets import TrainConfig

TEXT = "".join(f"{w} the quick brown fox jumps over the lazy dog. " for w in range(200))


def test_norm_placement_grid_changes_one_factor_at_a_time():
    conditions = EXPERIMENTS["norm-placement"].conditions
    assert len(conditions) == 8
    base = SIZES["small"]
    configs = [condition_config(base, c.overrides, seed=0) for c in conditions]
    assert {(c.pre_ln, c.warmup_iters > 0, c.lr) for c in configs} == {
        (p, w, lr) for p in (True, False) for w in (True, False) for lr in (1e-3, 1e-2)}
    clipping = [condition_config(base, c.overrides, seed=2)
                for c in EXPERIMENTS["clipping"].conditions]
    assert sorted((c.grad_clip, c.lr) for c in clipping) == sorted(
        (clip, 1e-3 * s) for clip in (0.0, 1.0) for s in (1.0, 3.0, 10.0))
    assert all(c.seed == 2 for c in clipping)
    optimizers = [condition_config(base, c.overrides, seed=1)
                  for c in EXPERIMENTS["optimizer"].conditions]
    assert [c.optimizer for c in optimizers] == ["adamw", "muon"]
    assert replace(optimizers[1], optimizer="adamw") == optimizers[0]  # the one change


def test_spikes_are_jumps_above_the_recent_median():
    smooth = [3.0 - 0.01 * t for t in range(60)]
    assert count_spikes(smooth) == 0
    spiky = list(smooth)
    spiky[40] += 1.0
    spiky[50] += 0.2
    assert count_spikes(spiky) == 1


def test_an_experiment_runs_end_to_end_with_table_and_plots(tmp_path):
    corpus = tmp_path / "fox.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    base = TrainConfig(data=str(corpus), block_size=16, n_layer=2, n_head=2, n_embd=16,
                       batch_size=4, max_iters=12, warmup_iters=3, eval_interval=6,
                       eval_iters=2, save_checkpoints=False, device="cpu", threads=1)
    summary = run_experiment("clipping", tmp_path / "out", seeds=2, base=base, log=lambda _: None)
    out = tmp_path / "out"
    for name in ("results.json", "results.md", "loss.png", "grad_norm.png", "layers.png"):
        assert (out / name).is_file(), name
    assert len(summary["runs"]) == 12 and len(summary["table"]) == 6
    row = summary["table"][0]
    assert row["runs"] == 2 and row["final_val_loss"][0] is not None
    run = summary["runs"][0]
    assert set(run["layer_grad_norms"]) == {"embed", "h.0", "h.1", "ln_f"}
    assert len(run["final_activations"]["act_std"]) == 2
    assert len(run["final_attention_entropy"]) == 2
    assert json.loads((out / "results.json").read_text())["experiment"] == "clipping"
    off = [r for r in summary["runs"] if r["condition"].startswith("clip off")]
    assert all(r["fraction_clipped"] == 0 for r in off)
    assert "| clip on, lr x1 |" in (out / "results.md").read_text()


def test_unknown_experiment_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'warmup'"):
        run_experiment("warmup", tmp_path)
