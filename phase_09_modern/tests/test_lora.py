import json

import pytest
import torch
from torch import nn

from phase_07_gpt.model import GPT, GPTConfig
from phase_09_modern.models.lora import (
    LoRALinear,
    apply_lora,
    finetune,
    lora_layers,
    main,
    merge_lora,
    split_by_speaker,
    trainable_parameters,
    unmerge_lora,
)


def _trained_lora(d_in=12, d_out=20, r=4, dtype=torch.float64):
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(d_in, d_out).to(dtype), r=r, alpha=8.0)
    with torch.no_grad():  # as if trained: B away from zero
        layer.lora_B.normal_()
    return layer


def test_output_at_init_equals_the_base_layer():
    base = nn.Linear(12, 20)
    x = torch.randn(5, 3, 12)
    expected = base(x)
    layer = LoRALinear(base, r=4, alpha=8.0)
    assert torch.equal(layer(x), expected)
    assert layer.lora_A.abs().sum() > 0 and layer.lora_B.abs().sum() == 0


def test_merge_and_unmerge_give_equal_outputs():
    layer = _trained_lora()
    x = torch.randn(7, 12, dtype=torch.float64)
    weight = layer.base.weight.clone()
    unmerged = layer(x)
    assert not torch.allclose(unmerged, layer.base(x))  # the update is not zero
    layer.merge()
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.base.weight, weight + 2.0 * layer.lora_B @ layer.lora_A)
    layer.merge()  # twice is once
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-12)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, weight, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-12)


def test_only_a_and_b_train_and_their_count_is_r_times_d_in_plus_d_out():
    layer = _trained_lora(d_in=12, d_out=20, r=3, dtype=torch.float32)
    assert trainable_parameters(layer) == 3 * (12 + 20)
    layer(torch.randn(4, 12)).sum().backward()
    assert layer.base.weight.grad is None and layer.lora_A.grad is not None


def test_bad_ranks_fail_clearly():
    with pytest.raises(ValueError, match="positive integer"):
        LoRALinear(nn.Linear(4, 4), r=0, alpha=1.0)
    with pytest.raises(ValueError, match="larger than the layer's smaller side"):
        LoRALinear(nn.Linear(4, 16), r=5, alpha=1.0)
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(4, 4, 1), r=1, alpha=1.0)


def test_apply_lora_to_a_gpt_freezes_the_rest_and_keeps_its_output():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16)
    model = GPT(config)
    ids = torch.randint(0, 30, (2, 16))
    targets = torch.randint(0, 30, (2, 16))
    expected = model(ids)[0]
    names = apply_lora(model, r=2, alpha=4.0)
    assert len(names) == 2 * 4 and len(lora_layers(model)) == 8
    c = 16
    per_block = 2 * ((c + 3 * c) + (c + c) + (c + 4 * c) + (4 * c + c))
    assert trainable_parameters(model) == 2 * per_block
    assert torch.equal(model(ids)[0], expected)
    before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    finetune_tokens = torch.randint(0, 30, (500,))
    finetune(model, finetune_tokens, steps=3, batch_size=4, block_size=16, lr=1e-2)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters()
               if not p.requires_grad)
    tuned = model(ids, targets)[0]
    assert not torch.allclose(tuned, expected)
    merge_lora(model)
    torch.testing.assert_close(model(ids)[0], tuned, rtol=0, atol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(model(ids)[0], tuned, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_lora(model, targets=("nothing",))


def test_split_by_speaker():
    text = "A:\nhello\n\nB:\nbye\n\nA:\nagain\n\nAB:\nno"
    others, mine = split_by_speaker(text, "A")
    assert mine == "A:\nhello\n\nA:\nagain"
    assert others == "B:\nbye\n\nAB:\nno"
    with pytest.raises(ValueError, match="no speech by 'C'"):
        split_by_speaker(text, "C")


def test_tiny_demo_runs_and_lora_trains_far_fewer_parameters(tmp_path, capsys):
    speeches = [f"{'ROMEO' if i % 4 == 0 else 'MERCUTIO'}:\nthe quick brown fox {i} jumps over "
                f"the lazy dog, and then some." for i in range(400)]
    corpus = tmp_path / "play.txt"
    corpus.write_text("\n\n".join(speeches), encoding="utf-8")
    assert main(["--preset", "tiny", "--data", str(corpus), "--out", str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "lora_demo.json").read_text())
    assert result["lora"]["trainable"] == 2 * 8 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32))
    assert result["lora"]["trainable"] < result["full"]["trainable"] / 3
    assert result["full"]["trainable"] == result["base"]["params"]
    assert result["lora"]["speaker_val_merged"] == pytest.approx(result["lora"]["speaker_val"],
                                                                abs=1e-5)
    assert "| LoRA |" in capsys.readouterr().out
