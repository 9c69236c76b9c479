"""GPT-2 weights in the Hugging Face format, checked against transformers' own GPT-2, offline:
a random small GPT2LMHeadModel is saved to a temporary directory and loaded back."""

import pytest
import torch

from phase_07_gpt.model import GPT

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=99, n_positions=32, n_embd=32, n_layer=2,
                                     n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # random LayerNorm and bias values, so a missed one shows
        for name, param in model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                param.normal_(0.0, 0.5)
    path = tmp_path_factory.mktemp("gpt2-tiny")
    model.save_pretrained(path, safe_serialization=True)
    return path, model


def test_logits_match_transformers_gpt2(hf_dir):
    path, reference = hf_dir
    model = GPT.from_pretrained(path).eval()
    assert model.config.vocab_size == 99 and model.config.padded_vocab_size == 128
    ids = torch.randint(0, 99, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(ids).logits
        logits, _ = model(ids)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


def test_a_shorter_context_keeps_the_first_positions(hf_dir):
    path, reference = hf_dir
    model = GPT.from_pretrained(path, block_size=8).eval()
    ids = torch.randint(0, 99, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reference(ids).logits, rtol=0, atol=1e-5)


def test_missing_directory_and_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model directory"):
        GPT.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "vocab_size": 5, '
                                          '"n_positions": 4, "n_layer": 1, "n_head": 1, '
                                          '"n_embd": 4}')
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        GPT.from_pretrained(tmp_path)
