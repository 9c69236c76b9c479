"""Phase 5's NumPy GPT and this phase's PyTorch GPT give the same logits, both ways (float64)."""

import numpy as np
import pytest
import torch

from phase_01_nn.vocabulary import CharVocabulary
from phase_05_transformer_numpy.gpt import GPT as NumpyGPT
from phase_05_transformer_numpy.gpt import GPTConfig as NumpyGPTConfig
from phase_05_transformer_numpy.presets import TrainConfig as NumpyTrainConfig
from phase_05_transformer_numpy.training import GPTTraining
from phase_07_gpt.numpy_interop import from_numpy, from_numpy_checkpoint, to_numpy

TINY = dict(vocab_size=70, block_size=12, n_layer=2, n_head=2, n_embd=16)


def _numpy_model(seed=0, **options):
    model = NumpyGPT(NumpyGPTConfig(**{**TINY, **options}), rng=np.random.default_rng(seed),
                     dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    model.load_state_dict({name: value + 0.1 * rng.standard_normal(value.shape)
                           for name, value in model.state_dict().items()})
    return model


def _ids(seed=0):
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], (3, 12))


@pytest.mark.parametrize("options", [
    {}, {"pre_ln": False}, {"bias": True, "gelu": "tanh"}, {"tie_weights": False},
    {"positions": "sinusoidal"},
])
def test_numpy_to_torch_and_back_give_the_same_logits(options):
    np_model = _numpy_model(**options)
    ids = _ids()
    expected, _ = np_model.forward(ids)
    model = from_numpy(np_model, torch.float64).eval()
    assert model.config.padded_vocab_size == 128
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(ids))
    np.testing.assert_allclose(logits.numpy(), expected, rtol=0, atol=1e-10)

    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        changed, _ = model(torch.from_numpy(ids))
    back = to_numpy(model, np.float64)
    np.testing.assert_allclose(back.forward(ids)[0], changed.numpy(), rtol=0, atol=1e-10)
    assert np.abs(back.forward(ids)[0] - expected).max() > 1e-3


def test_a_phase_5_checkpoint_loads_into_the_torch_model(tmp_path):
    text = "to be or not to be, that is the question. " * 20
    vocab = CharVocabulary.from_text(text)
    config = NumpyTrainConfig(n_layer=1, n_head=2, n_embd=8, block_size=8, batch_size=2,
                              max_iters=2, warmup_iters=1, eval_iters=1)
    run = GPTTraining(config, vocab.encode(text), vocab)
    run.train_step()
    path = run.save(tmp_path / "ckpt.npz")
    model, loaded_vocab = from_numpy_checkpoint(path, torch.float64)
    assert loaded_vocab.itos == vocab.itos
    ids = vocab.encode("to be or")[None, :]
    expected, _ = run.model.forward(ids)
    with torch.no_grad():
        logits, _ = model.eval()(torch.from_numpy(ids))
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-5)
