import pytest
import torch

from phase_07_gpt.model import GPT, GPTConfig
from phase_07_gpt.muon import MuonWithAdamW, hidden_matrices, muon_param_groups, newton_schulz


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
