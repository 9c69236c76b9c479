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
    assert ("| larger | numpy | 2 (2 workers) | 700.0 | 2,926 | 320 | 0.90x | time <= 1.0x: met; "
            "memory <= torch's: met |") in text
    assert "| larger | torch | 2 | 700.0 | 2,926 | 320 |  |  |" in text


def test_the_goal_column_says_missed_when_missed():
    numpy_row = {"preset": "shakespeare-char", "threads": 1, "implementation": "numpy",
                 "ratio": 1.3, "peak_step_mib": 40.0}
    torch_row = {**numpy_row, "implementation": "torch", "ratio": None, "peak_step_mib": 39.0}
    assert bench.verdict(numpy_row, torch_row) == ("time <= 0.8x: missed; "
                                                   "memory <= torch's: missed")
    assert bench.verdict({**numpy_row, "ratio": 0.8, "peak_step_mib": 39.0}, torch_row) == (
        "time <= 0.8x: met; memory <= torch's: met")
    assert bench.verdict({**numpy_row, "preset": "tiny-test"}, None) == ""


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


FOUND = {"cpu": {"model": "a test CPU", "vendor": "GenuineIntel", "cores": 2},
         "numpy": {"version": "2.4.6", "blas": "openblas", "blas_version": "0.3.31",
                   "kernel": "SkylakeX"},
         "torch": {"version": "2.13.0", "blas": "mkl", "blas_version": "2024.2",
                   "capability": "AVX512"},
         "numpy_kernel_unforced": None}


def test_the_libraries_are_named_under_the_table():
    lines = bench.describe(FOUND, env={})
    assert lines == ["CPU: a test CPU (GenuineIntel, 2 cores)",
                     "NumPy 2.4.6: openblas 0.3.31, SkylakeX kernels",
                     "torch 2.13.0: mkl 2024.2, its own kernels: AVX512"]


def test_a_forced_openblas_kernel_is_flagged_with_the_command_to_time_it_unforced():
    forced = {**FOUND, "numpy": {**FOUND["numpy"], "kernel": "Haswell"},
              "numpy_kernel_unforced": "SkylakeX"}
    notes = bench.describe(forced, env={"OPENBLAS_CORETYPE": "Haswell"})[3:]
    assert len(notes) == 1
    assert "runs its Haswell kernels, not the SkylakeX ones" in notes[0]
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m" in notes[0]
    # forced to what it would choose anyway: nothing to say
    same = {**FOUND, "numpy_kernel_unforced": "SkylakeX"}
    assert bench.describe(same, env={"OPENBLAS_CORETYPE": "SkylakeX"})[3:] == []


def test_mkl_off_intel_is_flagged():
    amd = {**FOUND, "cpu": {**FOUND["cpu"], "vendor": "AuthenticAMD"}}
    notes = bench.describe(amd, env={})[3:]
    assert len(notes) == 1 and "MKL on this AuthenticAMD processor" in notes[0]
    openblas_torch = {**amd, "torch": {**FOUND["torch"], "blas": "open", "blas_version": None}}
    assert bench.describe(openblas_torch, env={})[3:] == []


def test_this_process_libraries_are_found():
    """NumPy's BLAS through threadpoolctl, torch's from its build configuration."""
    found = bench.libraries()
    assert found["numpy"]["blas"] in ("openblas", "mkl", "blis", "accelerate", "unknown")
    assert found["numpy"]["blas"] != "unknown", "threadpoolctl found no BLAS loaded by NumPy"
    assert found["torch"]["capability"]
    assert len(bench.describe(found)) >= 3
