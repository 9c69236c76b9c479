"""Distribution shift: the loss in nats per character on Shakespeare's validation text against
text of other kinds (this project's notes and source, makemore's names). Characters the model
never saw cannot be encoded: they are removed before scoring and their share is reported."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from phase_07_gpt.dataset import read_text  # noqa: E402
from phase_09_modern.research.failure_modes.calibration import (  # noqa: E402
    expected_calibration_error,
)
from phase_09_modern.research.failure_modes.confident_errors import show_char  # noqa: E402
from phase_09_modern.research.failure_modes.scoring import (  # noqa: E402
    encode_known,
    mean_nll,
    next_token_logits,
    softmax,
    top1,
)

ROOT = Path(__file__).resolve().parents[3]


def shift_corpus(name: str) -> str:
    """``notes``: every ``*/notes/*.md`` of this repository; ``code``: every ``phase_*/*.py``
    (tests included), in path order; otherwise a corpus name or a file path (phase 7's
    ``read_text``)."""
    if name in ("notes", "code"):
        pattern = "phase_*/notes/*.md" if name == "notes" else "phase_*/**/*.py"
        return "\n".join(p.read_text(encoding="utf-8") for p in sorted(ROOT.glob(pattern)))
    return read_text(name)


def corpus_row(chars: int, skipped: Counter, logits: np.ndarray, targets: np.ndarray, *,
               bins: int, confident: float) -> dict:
    """One corpus's row: loss, top-1 accuracy, ECE, the share of confident wrong predictions,
    and how much of the text the vocabulary could not read."""
    confidence, correct = top1(softmax(logits), targets)
    return {"loss": mean_nll(logits, targets), "accuracy": float(correct.mean()),
            "ece": expected_calibration_error(confidence, correct, bins),
            "confident_wrong": float(((confidence >= confident) & ~correct).mean()),
            "scored": len(targets), "chars": chars,
            "skipped_share": sum(skipped.values()) / chars,
            "top_skipped": [[show_char(ch), n] for ch, n in skipped.most_common(8)]}


def measure_shift(model, itos: list[str], texts: dict[str, str], *, max_tokens: int, bins: int,
                  confident: float) -> dict:
    """``corpus_row`` for each named text, about ``max_tokens`` predictions spread over each."""
    rows = {}
    for name, text in texts.items():
        ids, skipped = encode_known(text, itos)
        logits, targets, _ = next_token_logits(model, ids, max_tokens)
        rows[name] = corpus_row(len(text), skipped, logits, targets, bins=bins,
                                confident=confident)
    return rows


def plot_losses(result: dict, path: Path) -> None:
    """Loss per corpus, bars with the std over seeds."""
    shift = result["table"]["shift"]
    names = list(shift)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.bar(names, [shift[n]["loss"][0] for n in names], yerr=[shift[n]["loss"][1] for n in names],
           capsize=4, color=["C0", "C0"] + ["C3"] * (len(names) - 2))
    for i, name in enumerate(names):
        ax.text(i, shift[name]["loss"][0], f"{shift[name]['loss'][0]:.2f}", ha="center",
                va="bottom")
    vocab = result["runs"][0]["vocab_size"]
    ax.axhline(np.log(vocab), ls=":", color="k", label=f"uniform over {vocab} characters")
    ax.set_ylim(0, 1.2 * max(np.log(vocab), max(shift[n]["loss"][0] for n in names)))
    ax.set_ylabel("loss (nats per character)")
    ax.set_title("the same model on other kinds of text")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

