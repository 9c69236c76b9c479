"""Data parallelism: W workers on parts of a batch give the whole batch's loss and gradients (the
plain step is the reference), replicas share parameters and nothing else, a run with workers is
reproducible and resumable to the bit, bad worker counts fail clearly, and the numba kernels that
a step runs let go of the interpreter lock (else the workers would take turns)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from phase_00_math import erf
from phase_01_nn import clipping, embedding, optimizers
from phase_01_nn.command_line import UserError
from phase_04_attention import layer_norm
from phase_05_transformer_numpy.data_parallel import DataParallel, replicate, split_sizes
from phase_05_transformer_numpy.gpt import GPT, GPTConfig
from phase_05_transformer_numpy.tests.test_training import TINY, _data, tiny_command
from phase_05_transformer_numpy.train import main
from phase_05_transformer_numpy.training import GPTTraining

CONFIG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def _batch(rng, batch):
    return rng.integers(0, 11, (batch, 8)), rng.integers(0, 11, (batch, 8))


@pytest.mark.parametrize(("workers", "batch"), [(2, 6), (3, 7), (2, 2)])
def test_workers_give_the_whole_batch_gradient(workers, batch):
    """float64: the parts' weighted sum equals the plain step's gradient to rounding."""
    rng = np.random.default_rng(workers + batch)
    model = GPT(CONFIG, rng=rng, dtype=np.float64)
    ids, targets = _batch(rng, batch)
    plain = DataParallel(model, 1).loss_and_gradients(ids, targets)
    expected = {k: v.copy() for k, v in model.gradients().items()}
    with DataParallel(model, workers) as parallel:
        for _ in range(2):  # a second step: the replicas' gradients are zeroed, not summed
            loss = parallel.loss_and_gradients(ids, targets)
            assert loss == pytest.approx(plain, rel=1e-12)
            for name, grad in model.gradients().items():
                np.testing.assert_allclose(grad, expected[name], rtol=1e-10, atol=1e-14,
                                           err_msg=name)


def test_float32_workers_agree_with_the_plain_step():
    rng = np.random.default_rng(1)
    model = GPT(CONFIG, rng=rng, dtype=np.float32)
    ids, targets = _batch(rng, 8)
    plain = DataParallel(model, 1).loss_and_gradients(ids, targets)
    expected = {k: v.copy() for k, v in model.gradients().items()}
    with DataParallel(model, 2) as parallel:
        assert parallel.loss_and_gradients(ids, targets) == pytest.approx(plain, rel=1e-6)
    for name, grad in model.gradients().items():
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(grad, expected[name], atol=1e-5 * scale, err_msg=name)


def test_a_replica_shares_parameters_and_nothing_else():
    model = GPT(CONFIG, rng=np.random.default_rng(0), dtype=np.float64)
    twin = replicate(model)
    for (name, param), (_, other) in zip(model.parameters().items(),
                                          twin.parameters().items(), strict=True):
        assert other is param, name  # an optimizer step on the model moves both
    for (name, grad), (_, other) in zip(model.gradients().items(),
                                         twin.gradients().items(), strict=True):
        assert other is not grad and not np.shares_memory(other, grad), name
    assert twin.h[0].attn is twin.h.modules["0"].modules["attn"]  # attributes follow the copy
    assert twin.h[0].attn is not model.h[0].attn
    ids, targets = _batch(np.random.default_rng(2), 3)
    twin.forward(ids, targets)
    with pytest.raises(RuntimeError, match="needs a forward with targets first"):
        model.backward()  # the replica's forward filled the replica's caches only


def test_bad_worker_counts_fail_clearly():
    model = GPT(CONFIG, rng=np.random.default_rng(0))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            DataParallel(model, bad)
    with DataParallel(model, 3) as parallel, pytest.raises(
            ValueError, match="a batch of 2 sequences cannot be split across 3 workers"):
        parallel.loss_and_gradients(*_batch(np.random.default_rng(0), 2))
    ids, vocab = _data()
    with pytest.raises(UserError, match="--workers 5 is more than the batch of 4 sequences"):
        GPTTraining(TINY, ids, vocab, workers=5)


def test_split_sizes():
    assert split_sizes(12, 2) == [6, 6]
    assert split_sizes(7, 3) == [3, 2, 2]
    assert sum(split_sizes(13, 4)) == 13


def test_a_run_with_workers_resumes_to_the_bit(tmp_path):
    """With dropout on: the replicas' masks come from the model's generator, which is saved."""
    ids, vocab = _data()
    straight = GPTTraining(TINY, ids, vocab, workers=2)
    straight_losses = [straight.train_step() for _ in range(TINY.max_iters)]
    again = GPTTraining(TINY, ids, vocab, workers=2)
    assert [again.train_step() for _ in range(TINY.max_iters)] == straight_losses

    first = GPTTraining(TINY, ids, vocab, workers=2)
    losses = [first.train_step() for _ in range(5)]
    first.save(tmp_path / "ckpt.npz")
    resumed = GPTTraining.load(tmp_path / "ckpt.npz", ids, workers=2)
    losses += [resumed.train_step() for _ in range(TINY.max_iters - 5)]
    assert losses == straight_losses


def test_workers_train_like_one():
    """Without dropout, two workers follow the plain run to float32 rounding."""
    ids, vocab = _data()
    config = replace(TINY, dropout=0.0)
    one, two = GPTTraining(config, ids, vocab), GPTTraining(config, ids, vocab, workers=2)
    for _ in range(6):
        (a, norm_a), (b, norm_b) = one.train_step(), two.train_step()
        assert b == pytest.approx(a, rel=1e-4) and norm_b == pytest.approx(norm_a, rel=1e-3)


def test_the_step_kernels_release_the_interpreter_lock():
    kernels = [erf._x_normal_cdf_kernel, erf._x_normal_cdf_with_backward_kernel,
               layer_norm._layer_norm_kernel,
               layer_norm._layer_norm_backward_kernel, embedding._add_rows,
               clipping._sum_of_squares_kernel, optimizers._adam_kernel]
    if not hasattr(kernels[0], "targetoptions"):
        pytest.skip("NUMBA_DISABLE_JIT=1: the kernels are plain Python functions")
    for kernel in kernels:
        assert kernel.targetoptions.get("nogil"), kernel


def test_command_with_workers(tmp_path, monkeypatch, capsys):
    options = [*tiny_command(tmp_path, monkeypatch), "--max-iters", "4", "--warmup-iters", "1"]
    assert main([*options, "--workers", "2"]) == 0
    assert "split across 2 workers" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 4
    assert main([*options, "--workers", "0"]) == 2
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err
