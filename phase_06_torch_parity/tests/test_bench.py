"""The benchmark's two sides run the same model on the same batches: their losses agree, with the
NumPy side split across data-parallel workers or not, and the table says how NumPy used its
threads."""

import pytest
import torch

from phase_06_torch_parity import bench

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8, "batch_size": 4}


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(bench.PRESETS, "tiny-test", TINY)
    threads = torch.get_num_threads()
    yield "tiny-test"
    torch.set_num_threads(threads)  # the worker sets torch's thread count for the process


def test_both_sides_take_the_same_steps(tiny_preset):
    torch_side = bench.worker("torch", tiny_preset, steps=3, warmup=1, threads=1)
    for workers in (1, 2):
        numpy_side = bench.worker("numpy", tiny_preset, steps=3, warmup=1, threads=1,
                                  workers=workers)
        assert numpy_side["workers"] == workers
        for key in ("first_loss", "last_loss"):
            assert numpy_side[key] == pytest.approx(torch_side[key], rel=1e-4), (workers, key)


def test_the_table_names_the_workers():
    row = {"preset": "larger", "threads": 2, "ms_per_step": 700.0, "tokens_per_s": 2926.0,
           "peak_step_mib": 320.0}
    text = bench.table([{**row, "implementation": "numpy", "workers": 2, "ratio": 0.9},
                        {**row, "implementation": "torch", "workers": 1, "ratio": None}])
    assert "| larger | numpy | 2 (2 workers) | 700.0 | 2,926 | 320 | 0.90x |" in text
    assert "| larger | torch | 2 | 700.0 |" in text


def test_more_threads_than_sequences(tiny_preset, monkeypatch):
    """16 threads on a batch of 4: four workers of four BLAS threads each, not sixteen workers."""
    seen = {}

    def fake_run(command, env, **kwargs):
        seen["workers"] = command[command.index("--workers") + 1]
        seen["blas"] = env["OPENBLAS_NUM_THREADS"]
        raise SystemExit  # stop before a process starts

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    with pytest.raises(SystemExit):
        bench.run_worker("numpy", tiny_preset, steps=1, warmup=0, threads=16)
    assert seen == {"workers": "4", "blas": "4"}
