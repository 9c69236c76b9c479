"""Training checkpoints: everything a run needs to continue as if it had never stopped.

Model, optimizer and grad-scaler state, the step, every RNG state (torch's for dropout, CUDA's,
the data generator's, which is the data position), the best validation loss and the resolved
config. Written to a temporary file and renamed, so a run killed mid-write keeps its previous
checkpoint; read with ``torch.load(weights_only=True)``, which unpickles only tensors and plain
containers and never runs code from the file.
Notes: ``phase_07_gpt/notes/03_the_trainer.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from phase_07_gpt.presets import MODEL_FIELDS, TrainConfig

CHECKPOINT_FILE = "ckpt.pt"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first (python -m "
                                f"phase_07_gpt.train --out {path.parent}) or fix the path")
    state = torch.load(path, map_location=map_location, weights_only=True)
    missing = {"model", "config", "step", "vocab_size"} - set(state)
    if missing:
        raise ValueError(f"{path} is not a phase 7 checkpoint (it lacks {sorted(missing)})")
    return state


def check_same_model(saved: dict, config: TrainConfig, path: str | os.PathLike) -> None:
    """A checkpoint from another architecture or data fails here, naming what differs, instead
    of failing deep inside ``load_state_dict`` or, worse, silently training on other tokens."""
    current = config.to_dict()
    differ = [f"{name}: checkpoint {saved.get(name)!r}, this run {current[name]!r}"
              for name in (*MODEL_FIELDS, "data", "tokenizer")
              if saved.get(name) != current[name]]
    if differ:
        raise ValueError(f"the checkpoint {path} was made with another config; "
                         + "; ".join(differ))
