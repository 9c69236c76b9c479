"""Checkpoints and metrics logs: what a run leaves behind."""

import numpy as np
import pytest

from phase_01_nn.checkpoint import load_checkpoint, save_checkpoint
from phase_01_nn.metrics import MetricsLog, plot_curves, read_metrics


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((3, 2)).astype(np.float32), "step": np.array(7)}
    meta = {"config": {"n": 3}, "rng": rng.bit_generator.state}
    path = save_checkpoint(tmp_path / "ckpt.npz", arrays, meta)
    loaded, loaded_meta = load_checkpoint(path)
    np.testing.assert_array_equal(loaded["w"], arrays["w"])
    assert loaded["w"].dtype == np.float32
    assert loaded_meta == meta
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded_meta["rng"]
    assert restored.random() == rng.random()
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))
    with pytest.raises(ValueError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.npz", {"__meta__": np.zeros(1)}, {})


def test_metrics_log_is_flushed_per_line_and_appendable(tmp_path):
    path = tmp_path / "m.jsonl"
    log = MetricsLog(path)
    log.write(step=1, loss=2.5)
    assert read_metrics(path) == [{"step": 1, "loss": 2.5}]  # readable before close
    log.close()
    with MetricsLog(path, append=True) as again:
        again.write(step=2, loss=2.0, val=2.1)
        assert len(again.rows) == 2
    assert read_metrics(path)[-1] == {"step": 2, "loss": 2.0, "val": 2.1}


def test_plot_curves_writes_a_png(tmp_path):
    rows = [{"step": s, "loss": 3.0 / (s + 1), "val": None if s % 2 else 2.0} for s in range(10)]
    path = plot_curves(rows, tmp_path / "loss.png", ys=["loss", "val"], hline=(1.0, "goal"))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
