"""Phase 5's NumPy GPT <-> this phase's PyTorch GPT, both ways, with the same logits.

The name mapping and transposes are phase 6's (``numpy_to_torch_state_dict``,
``torch_to_numpy_params``): the two models share GPT-2's names. What this module adds is the
config translation and the vocabulary padding: phase 5 holds exactly ``vocab_size`` token rows,
this model ``padded_vocab_size``; the extra rows are zero on the way in and dropped on the way out.
Notes: ``phase_07_gpt/notes/01_gpt_in_pytorch.md``.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from phase_05_transformer_numpy.gpt import GPT as NumpyGPT
from phase_05_transformer_numpy.gpt import GPTConfig as NumpyGPTConfig
from phase_05_transformer_numpy.training import load_model
from phase_06_torch_parity.gpt_twin import numpy_to_torch_state_dict, torch_to_numpy_params
from phase_07_gpt.model import GPT, GPTConfig, pad_vocab_rows

_VOCAB_ROWS = ("transformer.wte.weight", "lm_head.weight")


def config_from_numpy(config: NumpyGPTConfig) -> GPTConfig:
    """The same architecture (phase 5's fields are a subset of this phase's)."""
    return GPTConfig(**{f.name: getattr(config, f.name) for f in fields(NumpyGPTConfig)})


def numpy_config_of(config: GPTConfig) -> NumpyGPTConfig:
    return NumpyGPTConfig(**{f.name: getattr(config, f.name) for f in fields(NumpyGPTConfig)})


def from_numpy(model: NumpyGPT, dtype: torch.dtype = torch.float32) -> GPT:
    """A PyTorch GPT holding the NumPy model's weights (a copy)."""
    config = config_from_numpy(model.config)
    state = numpy_to_torch_state_dict(model.state_dict(), model.config, dtype)
    for name in _VOCAB_ROWS:
        state[name] = pad_vocab_rows(state[name], config)
    if config.tie_weights:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    torch_model = GPT(config).to(dtype)
    torch_model.load_state_dict(state)
    return torch_model


def to_numpy(model: GPT, dtype=np.float32) -> NumpyGPT:
    """A phase 5 GPT holding this model's weights (a copy); phase 5 can then save it."""
    np_config = numpy_config_of(model.config)
    state = {name: (t[: model.config.vocab_size] if name in _VOCAB_ROWS else t)
             for name, t in model.state_dict().items()}
    arrays = torch_to_numpy_params(state, np_config)
    np_model = NumpyGPT(np_config, rng=np.random.default_rng(0), dtype=dtype)
    np_model.load_state_dict({name: value.astype(dtype) for name, value in arrays.items()})
    return np_model


def from_numpy_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32):
    """(PyTorch GPT, character vocabulary) from a phase 5 training checkpoint (``.npz``)."""
    np_model, vocab, _ = load_model(path)
    return from_numpy(np_model, dtype), vocab
