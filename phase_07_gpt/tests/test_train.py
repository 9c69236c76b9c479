import json
import math

import pytest
import torch

from phase_01_nn.metrics import read_metrics
from phase_07_gpt.checkpoint import load_checkpoint
from phase_07_gpt.device import pick_runtime
from phase_07_gpt.model import GPT, GPTConfig
from phase_07_gpt.muon import MuonWithAdamW
from phase_07_gpt.presets import TrainConfig, preset
from phase_07_gpt.sample import load_run, sample_text
from phase_07_gpt.train import (
    NonFiniteLossError,
    accumulate_gradients,
    clip_gradients,
    lr_at,
    main,
    make_optimizer,
    parse_config,
    train,
)

TEXT = "".join(f"{w} the quick brown fox jumps over the lazy dog. " for w in range(300))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def _config(corpus, **overrides):
    base = dict(data=corpus, block_size=16, n_layer=2, n_head=2, n_embd=16, batch_size=4,
                max_iters=8, warmup_iters=2, eval_interval=4, eval_iters=2, device="cpu",
                threads=1)
    return TrainConfig(**{**base, **overrides})


def _losses(out):
    return [(r["step"], r["loss"]) for r in read_metrics(out / "metrics.jsonl") if "loss" in r]


def _evals(out):
    return [(r["step"], r["val_loss"]) for r in read_metrics(out / "metrics.jsonl")
            if "val_loss" in r]


def test_resume_reproduces_an_uninterrupted_run_exactly(corpus, tmp_path):
    config = _config(corpus, dropout=0.1, grad_accum=2)
    whole = train(config, tmp_path / "whole", quiet=True)
    train(config, tmp_path / "split", quiet=True, stop_after=6)  # checkpoint at 4, stopped at 6
    assert load_checkpoint(tmp_path / "split" / "ckpt.pt")["step"] == 4
    resumed = train(config, tmp_path / "split", quiet=True, resume=True)
    assert _losses(tmp_path / "split") == _losses(tmp_path / "whole")
    assert [s for s, _ in _losses(tmp_path / "whole")] == list(range(8))
    assert _evals(tmp_path / "split") == _evals(tmp_path / "whole")
    assert resumed["final_val_loss"] == whole["final_val_loss"]
    a = load_checkpoint(tmp_path / "whole" / "ckpt.pt")
    b = load_checkpoint(tmp_path / "split" / "ckpt.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    again = train(config, tmp_path / "split", quiet=True, resume=True)  # nothing left to run
    assert again["tokens_per_second"] is None and again["final_val_loss"] == whole["final_val_loss"]


def test_a_run_writes_its_records_and_learns(corpus, tmp_path):
    summary = train(_config(corpus, max_iters=40, eval_interval=20, lr=3e-3), tmp_path,
                    quiet=True, preset="test")
    for name in ("config.json", "metrics.jsonl", "summary.json", "ckpt.pt", "loss.png",
                 "grad_norm.png", "tokenizer.txt"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "config.json").read_text())["preset"] == "test"
    evals = read_metrics(tmp_path / "metrics.jsonl")
    first = next(r for r in evals if "val_loss" in r)
    assert summary["final_val_loss"] < first["val_loss"] - 0.5
    assert len(first["act_std"]) == 2 and len(first["attn_entropy"][0]) == 2
    step = next(r for r in evals if "loss" in r)
    assert set(step["layer_grad_norms"]) == {"embed", "h.0", "h.1", "ln_f"}
    model, tokenizer = load_run(tmp_path)
    text = sample_text(model, tokenizer, "the", max_new_tokens=12, seed=3)[0]
    assert text.startswith("the") and len(text) == 15
    assert text == sample_text(model, tokenizer, "the", max_new_tokens=12, seed=3)[0]


def test_a_model_factory_replaces_the_gpt(corpus, tmp_path):
    built = []

    def factory(vocab_size):
        built.append(vocab_size)
        return GPT(GPTConfig(vocab_size=vocab_size, block_size=16, n_layer=1, n_head=1,
                             n_embd=8))

    summary = train(_config(corpus, max_iters=4), tmp_path, quiet=True, model_factory=factory)
    vocab = len(set(TEXT))
    assert built == [vocab]
    assert summary["params"] == factory(vocab).num_params()
    saved = load_checkpoint(tmp_path / "ckpt.pt")["model"]
    assert saved["transformer.wte.weight"].shape == (64, 8)
    assert "transformer.h.1.ln_1.weight" not in saved


def test_a_checkpoint_from_another_config_or_a_missing_one_fails_clearly(corpus, tmp_path):
    train(_config(corpus, max_iters=4), tmp_path, quiet=True)
    with pytest.raises(ValueError, match="n_embd: checkpoint 16, this run 32"):
        train(_config(corpus, max_iters=4, n_embd=32), tmp_path, quiet=True, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        train(_config(corpus), tmp_path / "empty", quiet=True, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_run(tmp_path / "empty")


def test_a_non_finite_loss_stops_with_a_clear_message(corpus, tmp_path):
    config = _config(corpus, lr=1e30, min_lr=1e29, warmup_iters=0, grad_clip=0.0,
                     max_iters=20, eval_interval=100)
    with pytest.raises(NonFiniteLossError, match="training loss is (nan|inf) at step"):
        train(config, tmp_path, quiet=True)
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 0


def test_a_corpus_shorter_than_the_context_fails_clearly(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 10, encoding="utf-8")
    with pytest.raises(ValueError, match="too few for a context of block_size = 16"):
        train(_config(str(short)), tmp_path / "run", quiet=True)


def test_learning_rate_warms_up_then_follows_a_cosine_to_min_lr():
    config = TrainConfig(lr=1.0, min_lr=0.1, warmup_iters=9, max_iters=109)
    assert lr_at(0, config) == pytest.approx(0.1)
    assert lr_at(8, config) == pytest.approx(0.9)
    assert lr_at(9, config) == pytest.approx(1.0)
    assert lr_at(59, config) == pytest.approx(0.55)
    assert lr_at(109, config) == pytest.approx(0.1)
    assert lr_at(0, TrainConfig(lr=1.0, warmup_iters=0, max_iters=10)) == pytest.approx(1.0)


def test_clipping_matches_torch_and_reports_the_norm_before_clipping():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=8))
    x = torch.randint(0, 20, (2, 8))
    model(x, x)[1].backward()
    reference = [p.grad.clone() for p in model.parameters()]
    expected = torch.nn.utils.clip_grad_norm_(
        [torch.nn.Parameter(torch.zeros_like(g)) for g in reference], 1.0)
    params = list(model.parameters())
    for p, g in zip(params, reference, strict=True):
        p.grad = g.clone()
    norm, layers = clip_gradients(list(model.named_parameters()), 0.1)
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in reference]))
    assert norm == pytest.approx(total.item(), rel=1e-6) and expected == 0
    assert math.sqrt(sum(v * v for v in layers.values())) == pytest.approx(norm, rel=1e-5)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    assert clipped.item() == pytest.approx(0.1, rel=1e-4)


def test_gradient_accumulation_gives_the_gradient_of_the_whole_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)).double()
    x = torch.randint(0, 20, (6, 8))
    y = torch.randint(0, 20, (6, 8))
    runtime = pick_runtime("cpu", "float32")
    scaler = runtime.grad_scaler()
    whole = accumulate_gradients(model, [(x, y)], runtime, scaler)
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    parts = accumulate_gradients(model, [(x[:3], y[:3]), (x[3:], y[3:])], runtime, scaler)
    assert parts == pytest.approx(whole, rel=1e-12)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-10, atol=1e-12)


def test_weight_decay_skips_biases_and_norm_gains():
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8,
                          bias=True))
    decay, no_decay = make_optimizer(model, TrainConfig(), torch.device("cpu")).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert len(no_decay["params"]) == 2 * 2 + 2 + 4 * 1  # ln_1, ln_2 (w, b), ln_f, 4 biases
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == sum(
        p.numel() for p in model.parameters())


def test_presets_and_typed_overrides_from_the_command_line():
    config, args = parse_config(["--preset", "tiny", "--lr", "0.01", "--no-pre-ln"])
    assert config == preset("tiny", lr=0.01, pre_ln=False) and args.preset == "tiny"
    default, _ = parse_config([])
    assert (default.n_layer, default.n_embd, default.block_size, default.beta2) == (4, 128, 64,
                                                                                      0.99)
    gpu, _ = parse_config(["--preset", "shakespeare-char-gpu"])
    assert (gpu.n_layer, gpu.n_head, gpu.n_embd, gpu.block_size, gpu.dropout) == (
        6, 6, 384, 256, 0.2)
    with pytest.raises(SystemExit):
        parse_config(["--n-layer", "1.5"])


def test_bad_training_options_fail_clearly(capsys):
    with pytest.raises(ValueError, match="not divisible by n_head"):
        TrainConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="min_lr <= lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)
    assert main(["--n-embd", "30", "--n-head", "4"]) == 2
    assert "not divisible by n_head" in capsys.readouterr().err
    with pytest.raises(ValueError, match="float16 training needs loss scaling"):
        pick_runtime("cpu", "float16")
    runtime = pick_runtime("cpu", "auto")
    assert runtime.autocast_dtype is None and not runtime.use_scaler


def test_the_sample_command_prints_text_from_a_run(corpus, tmp_path, capsys):
    from phase_07_gpt.sample import main as sample_main

    train(_config(corpus, max_iters=4), tmp_path, quiet=True)
    assert sample_main(["--out", str(tmp_path), "--prompt", "the", "--max-new-tokens", "7",
                        "--top-p", "0.9", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("the")
    assert sample_main(["--out", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert sample_main(["--out", str(tmp_path), "--prompt", "Z"]) == 2
    assert "not in the vocabulary" in capsys.readouterr().err


def test_the_tensorboard_logger_mirrors_the_metrics_and_purges_on_resume(corpus, tmp_path):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    config = _config(corpus, logger="tensorboard")
    train(config, tmp_path, quiet=True, stop_after=6)  # events to step 5, checkpoint at 4
    train(config, tmp_path, quiet=True, resume=True)
    events = accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    mirrored = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [step for step, _ in mirrored] == list(range(8))  # steps 4 and 5 not doubled
    logged = [loss for _, loss in _losses(tmp_path)]
    assert [value for _, value in mirrored] == pytest.approx(logged, rel=1e-6)  # float32
    assert [e.step for e in events.Scalars("eval/val_loss")] == [0, 4, 8]


def test_an_unknown_logger_fails_clearly(corpus):
    with pytest.raises(ValueError, match="logger must be one of"):
        _config(corpus, logger="wandb")


def test_the_trainer_with_muon_learns_and_resumes_to_the_bit(corpus, tmp_path):
    config = _config(corpus, max_iters=40, eval_interval=20, lr=3e-3, optimizer="muon")
    model = GPT(config.model_config(vocab_size=20))
    assert isinstance(make_optimizer(model, config, torch.device("cpu")), MuonWithAdamW)
    whole = train(config, tmp_path / "whole", quiet=True)
    first = next(r for r in read_metrics(tmp_path / "whole" / "metrics.jsonl") if "val_loss" in r)
    assert whole["final_val_loss"] < first["val_loss"] - 0.5
    train(config, tmp_path / "split", quiet=True, stop_after=30)  # checkpoint at 20
    resumed = train(config, tmp_path / "split", quiet=True, resume=True)
    assert resumed["final_val_loss"] == whole["final_val_loss"]
    a = load_checkpoint(tmp_path / "whole" / "ckpt.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "ckpt.pt")["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_an_unknown_optimizer_fails_clearly(corpus):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        _config(corpus, optimizer="sgd")
