"""Confident errors: the predictions that put at least a threshold (0.9) on a character that is
not the next one; how often, which (predicted, actual) pairs, and examples in context."""

from __future__ import annotations

from collections import Counter

import numpy as np

from phase_09_modern.research.failure_modes.scoring import top1


def show_char(ch: str) -> str:
    """A character as a table or a line of text can show it."""
    return {"\n": "\\n", " ": "␣", "\t": "\\t", "|": "\\|"}.get(ch, ch)


def confident_errors(probs: np.ndarray, targets: np.ndarray, itos: list[str], *,
                     threshold: float = 0.9, top: int = 15) -> dict:
    """The predictions whose top-1 probability is >= ``threshold`` and wrong: their share of all
    predictions, their share of the confident ones, and the most frequent (predicted, actual)
    pairs."""
    confidence, correct = top1(probs, targets)
    confident = confidence >= threshold
    wrong = confident & ~correct
    predicted = probs.argmax(axis=-1)
    pairs = Counter(zip(predicted[wrong].tolist(), targets[wrong].tolist(), strict=True))
    return {"rate": float(wrong.mean()), "confident_share": float(confident.mean()),
            "wrong_when_confident": float(wrong.sum() / confident.sum()) if confident.any()
            else None,
            "count": int(wrong.sum()),
            "top_pairs": [[itos[p], itos[a], c] for (p, a), c in pairs.most_common(top)]}


def error_examples(text: str, probs: np.ndarray, targets: np.ndarray, positions: np.ndarray,
                   rows: np.ndarray, itos: list[str], *, count: int, seed: int,
                   context: int = 40) -> str:
    """``count`` of the predictions ``rows`` (a seeded draw, shown in text order), each as the
    text before it, then [predicted character, its probability / actual character].
    ``positions[r]`` is where prediction r stands in ``text``: its target is the next char."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(rows, size=min(count, len(rows)), replace=False))
    lines = []
    for r in chosen:
        i = int(positions[r])
        before = text[max(0, i + 1 - context): i + 1].replace("\n", "\\n")
        guess = int(probs[r].argmax())
        lines.append(f"{before}[{show_char(itos[guess])} {probs[r, guess]:.2f} / "
                     f"{show_char(itos[int(targets[r])])}]")
    return "\n".join(lines) + "\n"

