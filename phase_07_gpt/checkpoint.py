"""Training checkpoints: everything a run needs to continue as if it had never stopped.

Model, optimizer and grad-scaler state, the step, every RNG state (torch's for dropout, CUDA's,
the data generator's, which is the data position), the best validation loss, the resolved
config and the SHA-256 of the training text. Written through phase 1's ``atomic_write``
(temporary file, fsync, rename, a checksum beside it, the previous checkpoint kept), never from
a state with a non-finite weight, and read with ``torch.load(weights_only=True)``, which
unpickles only tensors and plain containers and never runs code from the file, after the
checksum is verified.
Notes: ``phase_07_gpt/notes/03_the_trainer.md``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from phase_01_nn.checkpoint import (
    CheckpointError,
    atomic_write,
    check_checkpoint_file,
    offer_previous,
    refuse_non_finite,
)
from phase_07_gpt.presets import MODEL_FIELDS, TrainConfig

CHECKPOINT_FILE = "ckpt.pt"


def non_finite_tensors(state: dict, prefix: str = "") -> list[str]:
    """The names of the floating-point tensors in a (nested) state that hold an inf or NaN."""
    bad = []
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            bad += non_finite_tensors(value, f"{name}.")
        elif isinstance(value, torch.Tensor) and value.is_floating_point() \
                and not torch.isfinite(value).all():
            bad.append(name)
    return bad


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``state`` serialised in memory first, so that a full disk shows as the OSError of our own
    write (a clear message) and not as an error deep inside torch's zip writer."""
    refuse_non_finite(path, non_finite_tensors(state.get("model", {}), "model."),
                      step=state.get("step"))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The state saved at ``path``, its checksum verified; an unreadable file is an error that
    names it and offers the previous checkpoint."""
    path = check_checkpoint_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch reports a truncated or foreign file in several types
        raise CheckpointError(f"the checkpoint {path} cannot be read ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}): it is "
                              f"truncated, corrupted or not a torch checkpoint; "
                              f"{offer_previous(path)}") from error


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file() and not path.with_name(f"{path.stem}.previous{path.suffix}").is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first (python -m "
                                f"phase_07_gpt.train --out {path.parent}) or fix the path")
    state = read_checkpoint(path, map_location)
    missing = {"model", "config", "step", "vocab_size"} - set(state)
    if missing:
        raise CheckpointError(f"{path} is not a phase 7 checkpoint (it lacks {sorted(missing)})")
    return state


def check_same_model(saved: dict, config: TrainConfig, path: str | os.PathLike) -> None:
    """A checkpoint from another architecture or data fails here, naming what differs, instead
    of failing deep inside ``load_state_dict`` or, worse, silently training on other tokens.
    The seed cannot change either (a resume restores the generators' states instead), nor the
    optimizer (its saved state belongs to the one that wrote it)."""
    current = config.to_dict()
    saved = {"optimizer": "adamw", **saved}  # checkpoints from before the option: AdamW
    differ = [f"{name}: checkpoint {saved.get(name)!r}, this run {current[name]!r}"
              for name in (*MODEL_FIELDS, "data", "tokenizer", "seed", "optimizer")
              if saved.get(name) != current[name]]
    if differ:
        raise ValueError(f"the checkpoint {path} was made with another config; "
                         + "; ".join(differ))
