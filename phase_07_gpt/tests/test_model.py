import pytest
import torch

from phase_07_gpt.model import GPT, GPTConfig, sinusoidal_table

TINY = dict(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)


def _ids(config, b=2, t=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (b, t), generator=g)


@pytest.mark.parametrize("bad, message", [
    (dict(n_embd=30, n_head=4), "not divisible by n_head"),
    (dict(n_layer=0), "n_layer must be a positive integer"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(positions="rotary"), "positions must be one of"),
    (dict(gelu="fast"), "gelu must be one of"),
    (dict(init="xavier"), "init must be one of"),
])
def test_a_bad_config_fails_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**TINY, **bad})


def test_vocabulary_padded_to_64_and_logits_cut_back():
    config = GPTConfig(**TINY)
    assert config.padded_vocab_size == 64
    assert GPTConfig(**{**TINY, "vocab_size": 50257}).padded_vocab_size == 50304
    model = GPT(config)
    assert model.transformer.wte.weight.shape == (64, 16)
    logits, loss = model(_ids(config), _ids(config, seed=1))
    assert logits.shape == (2, 10, 50)
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.3


def test_a_context_longer_than_block_size_fails_clearly():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ValueError, match="longer than the context block_size = 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_tied_head_is_the_token_table_and_residual_projections_scaled():
    torch.manual_seed(0)
    config = GPTConfig(**{**TINY, "n_layer": 8, "n_embd": 64, "n_head": 4})
    model = GPT(config)
    assert model.lm_head.weight is model.transformer.wte.weight
    proj = torch.cat([b.mlp.c_proj.weight.flatten() for b in model.transformer.h])
    fc = torch.cat([b.mlp.c_fc.weight.flatten() for b in model.transformer.h])
    assert abs(proj.std().item() - 0.02 / 4) < 0.0005
    assert abs(fc.std().item() - 0.02) < 0.001
    untied = GPT(GPTConfig(**{**TINY, "tie_weights": False}))
    assert untied.lm_head.weight is not untied.transformer.wte.weight


def test_width_initialisation_redraws_only_the_blocks():
    # init="width": the blocks' matrices N(0, 1/n_embd), residual projections / sqrt(2 n_layer);
    # the token table (and with it the tied head) keeps GPT-2's 0.02
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**TINY, "n_layer": 8, "n_embd": 64, "n_head": 4, "init": "width"}))
    blocks = model.transformer.h
    for weights, expected in [([b.attn.c_attn.weight for b in blocks], 1 / 8),
                              ([b.mlp.c_fc.weight for b in blocks], 1 / 8),
                              ([b.attn.c_proj.weight for b in blocks], 1 / 32),
                              ([b.mlp.c_proj.weight for b in blocks], 1 / 32),
                              ([model.transformer.wte.weight], 0.02),
                              ([model.transformer.wpe.weight], 0.02)]:
        std = torch.cat([w.flatten() for w in weights]).std().item()
        assert abs(std / expected - 1) < 0.05, (std, expected)


@pytest.mark.parametrize("options", [
    {}, {"pre_ln": False}, {"bias": True}, {"positions": "sinusoidal"}, {"gelu": "none"},
])
def test_causal_and_plain_path_matches_the_fused_one(options):
    torch.manual_seed(0)
    config = GPTConfig(**{**TINY, **options})
    model = GPT(config).double().eval()
    ids = _ids(config)
    logits, _ = model(ids)
    seen = model.inspect(ids)
    torch.testing.assert_close(seen["logits"], logits, rtol=1e-10, atol=1e-10)
    assert len(seen["attention"]) == 2 and seen["attention"][0].shape == (2, 2, 10, 10)
    weights = seen["attention"][1]
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 10, dtype=torch.float64))
    assert torch.all(weights.triu(1) == 0)
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % config.vocab_size
    torch.testing.assert_close(model(changed)[0][:, :6], logits[:, :6], rtol=0, atol=1e-12)


def test_sinusoidal_table_is_a_saved_untrained_buffer():
    model = GPT(GPTConfig(**{**TINY, "positions": "sinusoidal"}))
    assert "transformer.wpe.table" in model.state_dict()
    assert "transformer.wpe.table" not in dict(model.named_parameters())
    table = sinusoidal_table(16, 16)
    assert table[0, 0] == 0 and table[0, 1] == 1
    assert torch.allclose(table[3, 2], torch.sin(torch.tensor(3.0 * 10000 ** (-2 / 16))))


def test_config_round_trips_through_a_dict_and_rejects_unknown_fields():
    config = GPTConfig(**TINY)
    assert GPTConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown GPTConfig fields"):
        GPTConfig.from_dict({**config.to_dict(), "n_heads": 3})
