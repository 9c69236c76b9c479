"""An optional mirror of the training metrics in TensorBoard (``--logger tensorboard``).

``metrics.jsonl`` stays the record of a run (the plots, the experiments and the tests read it);
this only copies the scalars into event files under ``<out>/tensorboard`` for people who watch
runs in ``tensorboard --logdir runs``. On ``--resume`` the events from the stopped run's later
steps are purged, as the JSONL file is truncated, so a resumed curve has no doubled stretch.
Notes: ``phase_07_gpt/notes/03_the_trainer.md``.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

LOGGERS = ("none", "tensorboard")


class TensorBoardLogger:
    """Writes every numeric value of a metrics row as the scalar ``<group>/<name>``."""

    def __init__(self, out: Path, config: dict, start_step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ValueError("--logger tensorboard needs the tensorboard package: pip install "
                             "tensorboard (it is in this project's dev extra)") from error
        self.directory = Path(out) / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.directory),
                                    purge_step=start_step if start_step else None)
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```",
                             start_step)

    def log(self, group: str, step: int, row: dict) -> None:
        for name, value in row.items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(f"{group}/{name}", float(value), step)

    def close(self) -> None:
        self.writer.close()


def open_logger(kind: str, out: Path, config: dict, start_step: int = 0):
    """The logger named by ``--logger``, or None for ``none``."""
    if kind not in LOGGERS:
        raise ValueError(f"logger must be one of {LOGGERS}, got {kind!r}")
    return TensorBoardLogger(out, config, start_step) if kind == "tensorboard" else None
