import pytest
import torch

from phase_01_nn.metrics import read_metrics
from phase_07_gpt.checkpoint import load_checkpoint
from phase_07_gpt.model import GPT, GPTConfig
from phase_07_gpt.muon import MuonWithAdamW, hidden_matrices, muon_param_groups, newton_schulz
from phase_07_gpt.presets import TrainConfig
from phase_07_gpt.train import make_optimizer, train

TEXT = "".join(f"{w} the quick brown fox jumps over the lazy dog. " for w in range(300))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def _config(corpus, **overrides):
    base = dict(data=corpus, block_size=16, n_layer=2, n_head=2, n_embd=16, batch_size=4,
                max_iters=8, warmup_iters=2, eval_interval=4, eval_iters=2, device="cpu",
                threads=1, optimizer="muon")
    return TrainConfig(**{**base, **overrides})


@pytest.mark.parametrize("shape", [(8, 8), (6, 20), (20, 6)])
def test_newton_schulz_keeps_singular_vectors_and_brings_singular_values_near_one(shape):
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], min(shape), dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(shape[1], min(shape), dtype=torch.float64))
    g = (u * torch.linspace(1.0, 10.0, min(shape), dtype=torch.float64)) @ v.T
    o = newton_schulz(g)
    s = torch.linalg.svdvals(o)
    assert 0.68 <= s.min() and s.max() <= 1.14  # phase 9's measured band for 5 quintic steps
    inner = u.T @ o @ v
    off_diagonal = inner - torch.diag(torch.diagonal(inner))
    assert off_diagonal.abs().max() < 1e-10


def test_muon_takes_the_blocks_matrices_and_leaves_embeddings_head_and_vectors_to_adamw():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8,
                          tie_weights=False))
    hidden = hidden_matrices(model)
    assert hidden == {f"transformer.h.{i}.{part}.weight" for i in range(2) for part in
                      ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    muon, matrices, vectors = muon_param_groups(model, lr=1e-3, muon_lr=0.02, weight_decay=0.1)
    assert muon["use_muon"] and muon["lr_scale"] == pytest.approx(20.0)
    assert {p.dim() for p in vectors["params"]} == {1}
    named = dict(model.named_parameters())
    assert {id(p) for p in matrices["params"]} == {
        id(named[n]) for n in ("transformer.wte.weight", "transformer.wpe.weight",
                               "lm_head.weight")}


def test_the_adamw_groups_step_exactly_as_torch_adamw():
    torch.manual_seed(1)
    ours = [torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)),
            torch.nn.Parameter(torch.randn(5, dtype=torch.float64))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    mine = MuonWithAdamW([{"params": [ours[0]], "weight_decay": 0.1}, {"params": [ours[1]]}],
                         lr=3e-3, betas=(0.9, 0.99))
    reference = torch.optim.AdamW([{"params": [theirs[0]], "weight_decay": 0.1},
                                   {"params": [theirs[1]], "weight_decay": 0.0}],
                                  lr=3e-3, betas=(0.9, 0.99))
    for _ in range(6):
        grads = [torch.randn_like(p) for p in ours]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        mine.step()
        reference.step()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_muon_refuses_a_vector():
    with pytest.raises(ValueError, match="matrices only"):
        MuonWithAdamW([{"params": [torch.nn.Parameter(torch.zeros(3))], "use_muon": True}],
                      lr=1e-3)


def test_the_trainer_with_muon_learns_and_resumes_to_the_bit(corpus, tmp_path):
    config = _config(corpus, max_iters=40, eval_interval=20, lr=3e-3)
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
