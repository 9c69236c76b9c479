import math
import os
import shutil
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from phase_01_nn.metrics import read_metrics
from phase_08_train_124m.presets import PRESETS, RunConfig, grad_accum_steps
from phase_08_train_124m.shard_file import write_shard
from phase_08_train_124m.train import load_run_state, main, parse_config, train

VOCAB = 64


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Shards of a noisy repeating pattern: learnable, and several shards to cross."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    pattern = np.tile(np.arange(VOCAB), 40)
    stream = np.where(rng.random(pattern.size) < 0.1, rng.integers(0, VOCAB, pattern.size),
                      pattern)
    write_shard(root / "val_000000.bin", stream[:600])
    for i, start in enumerate(range(600, stream.size, 500)):
        write_shard(root / f"train_{i:06d}.bin", stream[start:start + 500])
    return str(root)


def _config(data_dir, **overrides):
    base = dict(data_dir=data_dir, vocab_size=VOCAB, block_size=8, n_layer=2, n_head=2,
                n_embd=16, total_batch_tokens=64, micro_batch=2, max_iters=6, lr=3e-3,
                min_lr=3e-4, warmup_iters=2, eval_interval=3, eval_iters=2, sample_interval=0,
                device="cpu", threads=1, seed=5)
    return RunConfig(**{**base, **overrides})


def _losses(out):
    return [(r["step"], r["loss"]) for r in read_metrics(out / "metrics.jsonl") if "loss" in r]


def _evals(out):
    return [(r["step"], r["val_loss"]) for r in read_metrics(out / "metrics.jsonl")
            if "val_loss" in r]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(world_size, config, out, attempts=3):
    """Run ``world_size`` gloo ranks. The free port is only free when it is picked: if another
    process takes it before rank 0 listens, pick another and start again."""
    for attempt in range(attempts):
        try:
            mp.spawn(_rank_main, args=(world_size, _free_port(), config, out), nprocs=world_size)
            return
        except mp.ProcessRaisedException as error:
            if "address already in use" not in str(error).lower() or attempt == attempts - 1:
                raise
            shutil.rmtree(out, ignore_errors=True)


def _rank_main(rank, world_size, port, config, out):
    env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    os.environ.update(env)
    train(config, out, quiet=True, env=env)


def test_two_gloo_processes_train_as_one_with_twice_the_accumulation(data_dir, tmp_path):
    config = _config(data_dir)  # 64 tokens a step: 1 process x 4 micro-steps, or 2 x 2
    single = train(config, tmp_path / "one", quiet=True)
    assert single["grad_accum"] == 4
    _spawn(2, config, tmp_path / "two")
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert [s for s, _ in two] == list(range(6))
    assert two[-1][1] < two[0][1]  # it learns
    for (_, a), (_, b) in zip(one, two, strict=True):
        assert abs(a - b) <= 1e-6
    for (_, a), (_, b) in zip(_evals(tmp_path / "one"), _evals(tmp_path / "two"), strict=True):
        assert abs(a - b) <= 1e-6
    saved = load_run_state(tmp_path / "two" / "ckpt.pt", config)
    assert saved["world_size"] == 2 and len(saved["rng"]) == 2
    assert saved["loader"] == load_run_state(tmp_path / "one" / "ckpt.pt", config)["loader"]


def test_resume_mid_run_equals_the_uninterrupted_run_exactly(data_dir, tmp_path):
    config = _config(data_dir, dropout=0.1, max_iters=7)
    whole = train(config, tmp_path / "whole", quiet=True)
    train(config, tmp_path / "split", quiet=True, stop_after=5)  # checkpoint at 3, stop at 5
    assert load_run_state(tmp_path / "split" / "ckpt.pt", config)["step"] == 3
    resumed = train(config, tmp_path / "split", quiet=True, resume=True)
    assert _losses(tmp_path / "split") == _losses(tmp_path / "whole")
    assert _evals(tmp_path / "split") == _evals(tmp_path / "whole")
    assert resumed["final_val_loss"] == whole["final_val_loss"]
    a = torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=True)
    assert a["loader"] == b["loader"] and a["loader"]["position"] > 0
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    again = train(config, tmp_path / "split", quiet=True, resume=True)  # nothing left to run
    assert again["tokens_per_second"] is None and again["final_val_loss"] == whole["final_val_loss"]
    assert _losses(tmp_path / "split") == _losses(tmp_path / "whole")


def test_resuming_with_another_model_or_no_checkpoint_fails_clearly(data_dir, tmp_path):
    train(_config(data_dir, max_iters=3), tmp_path / "run", quiet=True)
    with pytest.raises(ValueError, match="another config; n_embd: checkpoint 16, this run 32"):
        train(_config(data_dir, max_iters=3, n_embd=32), tmp_path / "run", quiet=True,
              resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        train(_config(data_dir), tmp_path / "none", quiet=True, resume=True)


def test_a_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(data_dir, tmp_path,
                                                                           capsys):
    argv = ["--preset", "tiny", "--data-dir", data_dir, "--vocab-size", "64", "--block-size",
            "8", "--n-embd", "16", "--micro-batch", "2", "--total-batch-tokens", "32",
            "--lr", "1e6", "--min-lr", "1e5", "--warmup-iters", "0", "--grad-clip", "0",
            "--max-iters", "50", "--eval-interval", "1", "--sample-interval", "0",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    # the evaluation after the first diverging step is NaN: that state is not saved
    assert "not finite at step" in err and "the state was not saved" in err
    assert "last good checkpoint" in err
    saved = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_grad_accum_comes_from_the_batch_and_must_divide():
    assert grad_accum_steps(524_288, 64, 1024, 1) == 8
    assert grad_accum_steps(524_288, 16, 1024, 8) == 4
    with pytest.raises(ValueError, match=r"not divisible by micro_batch 24 x block_size 1024 x "
                                         r"8 processes = 196608.*\[1, 2, 4, 8, 16, 32, 64\]"):
        grad_accum_steps(524_288, 24, 1024, 8)


def test_the_124m_preset_is_gpt2_small_with_the_gpt3_recipe():
    config, _ = parse_config(["--preset", "gpt2-124m"])
    assert (config.n_layer, config.n_head, config.n_embd, config.block_size) == (12, 12, 768,
                                                                                 1024)
    assert config.model_config().padded_vocab_size == 50304
    assert (config.lr, config.min_lr, config.warmup_iters, config.weight_decay) == (
        6e-4, 6e-5, 715, 0.1)
    assert (config.beta1, config.beta2, config.grad_clip) == (0.9, 0.95, 1.0)
    assert config.total_batch_tokens * config.max_iters == pytest.approx(10e9, rel=1e-3)
    assert PRESETS["tiny"].device == "cpu"
    with pytest.raises(ValueError, match="min_lr"):
        RunConfig(lr=1e-4, min_lr=1e-3)
    assert math.isclose(config.lr / config.min_lr, 10)
