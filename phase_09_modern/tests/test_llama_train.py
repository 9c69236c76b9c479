import json

import pytest
import torch

from phase_01_nn.metrics import read_metrics
from phase_07_gpt.presets import PRESETS, TrainConfig
from phase_09_modern.models.llama import Llama, LlamaConfig
from phase_09_modern.models.llama_train import llama_config, main, swiglu_width

TEXT = "".join(f"{w} the quick brown fox jumps over the lazy dog. " for w in range(300))


def test_swiglu_width_keeps_the_mlp_at_gpts_size():
    assert swiglu_width(128) == 344 and swiglu_width(32) == 88
    for n_embd in (32, 128, 384):
        assert abs(3 * swiglu_width(n_embd) - 8 * n_embd) <= 3 * 8


def test_the_preset_model_has_gpts_parameter_count():
    config = llama_config(TrainConfig(), vocab_size=65, n_kv_head=None, d_ff=None)
    assert (config.n_layer, config.n_head, config.n_kv_head, config.n_embd, config.d_ff) == \
        (4, 4, 4, 128, 344)
    assert Llama(config).num_params() == 800_000


def test_the_llama_follows_the_gpts_initialisation_rule():
    # the comparison stays controlled: the preset's init="width" reaches the LLaMA too
    torch.manual_seed(0)
    config = llama_config(PRESETS["shakespeare-char"], vocab_size=65, n_kv_head=None, d_ff=None)
    assert config.init == "width"
    layers = Llama(config).transformer.h
    q = torch.cat([layer.attn.q_proj.weight.flatten() for layer in layers])
    down = torch.cat([layer.mlp.down_proj.weight.flatten() for layer in layers])
    assert abs(q.std().item() * 128**0.5 - 1) < 0.05
    assert abs(down.std().item() * 128**0.5 * 8**0.5 - 1) < 0.05
    assert llama_config(TrainConfig(), 65, None, None).init == "gpt2"


def test_post_ln_is_refused():
    with pytest.raises(ValueError, match="pre-norm only"):
        llama_config(TrainConfig(pre_ln=False), 10, None, None)


def test_phase_7s_trainer_trains_the_llama_beside_the_gpt(tmp_path, capsys):
    corpus = tmp_path / "fox.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--data", str(corpus), "--max-iters", "30", "--eval-interval",
            "15", "--n-kv-head", "1", "--threads", "1", "--with-gpt", "--out", str(out)]
    assert main(argv) == 0
    runs = json.loads((out / "comparison.json").read_text())["runs"]
    saved = LlamaConfig(**json.loads((out / "llama" / "llama_config.json").read_text()))
    assert saved.n_kv_head == 1 and saved.d_ff == 88
    assert runs["LLaMA"]["params"] == Llama(saved).num_params()
    evals = [r["val_loss"] for r in read_metrics(out / "llama" / "metrics.jsonl")
             if "val_loss" in r]
    assert evals[-1] < evals[0] - 0.3
    assert runs["GPT (phase 7)"]["steps"] == runs["LLaMA"]["steps"] == 30
    assert "| LLaMA |" in capsys.readouterr().out
