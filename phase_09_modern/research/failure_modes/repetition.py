"""Repetition (Holtzman et al. 2020): greedy decoding falls into loops that sampling escapes.
Measured as the share of character 4-grams and word 3-grams of a continuation that repeat an
earlier one of the same continuation, and the longest exact loop (a stretch made of at least
two back-to-back copies of one unit), against the sampling temperature, beside the same
statistics on the real text that follows each prompt."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from phase_07_gpt.generate import generate  # noqa: E402
from phase_09_modern.research.failure_modes.scoring import encode_known  # noqa: E402


def ngram_repeats(items, n: int) -> tuple[int, int]:
    """(how many of the n-grams of ``items`` equal an n-gram that starts earlier, how many
    n-grams there are). ``items``: a string (character n-grams) or a list (e.g. of words)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    seen: set = set()
    repeats = total = 0
    for i in range(len(items) - n + 1):
        gram = tuple(items[i:i + n])
        repeats += gram in seen
        total += 1
        seen.add(gram)
    return repeats, total


def repeated_ngram_rate(items, n: int) -> float:
    """The share of n-grams that repeat an earlier one (``ngram_repeats``); needs >= n items."""
    repeats, total = ngram_repeats(items, n)
    if total == 0:
        raise ValueError(f"{len(items)} items hold no {n}-gram")
    return repeats / total


def longest_loop(text: str) -> tuple[int, int]:
    """(length, period) of the longest stretch of ``text`` made of at least two back-to-back
    copies of one unit (``abcabcab`` is 8 long with period 3); (0, 0) when there is none."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    best = (0, 0)
    for period in range(1, len(codes) // 2 + 1):
        same = np.concatenate([[False], codes[:-period] == codes[period:], [False]])
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))
        if len(edges) == 0:
            continue
        run = int((edges[1::2] - edges[0::2]).max())  # the longest run of text[j] == text[j+p]
        if run >= period and run + period > best[0]:
            best = (run + period, period)
    return best


def repetition_stats(texts: list[str]) -> dict:
    """Pooled over ``texts``: the share of repeated char 4-grams and word 3-grams (words split
    at whitespace), and the mean over texts of the longest loop's length in characters."""
    chars = [ngram_repeats(t, 4) for t in texts]
    words = [ngram_repeats(t.split(), 3) for t in texts]
    word_total = sum(total for _, total in words)
    return {"char4_repeat": sum(r for r, _ in chars) / max(sum(t for _, t in chars), 1),
            "word3_repeat": sum(r for r, _ in words) / word_total if word_total else None,
            "longest_loop": statistics.fmean(longest_loop(t)[0] for t in texts)}


def prompt_positions(length: int, prompts: int, span: int) -> list[int]:
    """``prompts`` evenly spaced starts of windows of ``span`` characters in a text of
    ``length``."""
    if length < span:
        raise ValueError(f"the validation text has {length} characters; prompts and their "
                         f"continuations need {span}")
    return [int(p) for p in np.linspace(0, length - span, prompts)]


def decode_label(temperature: float) -> str:
    return "greedy" if temperature == 0 else f"T = {temperature:g}"


def continuations(model, ids: list[list[int]], length: int, temperature: float,
                  seed: int) -> list[list[int]]:
    """``length`` new tokens after each prompt (one batch, phase 7's ``generate``)."""
    prompt = torch.tensor(ids, dtype=torch.long)
    out = generate(model, prompt, length, temperature=temperature, seed=seed)
    return out[:, prompt.shape[1]:].tolist()


def measure_repetition(model, itos: list[str], val_text: str, *, temperatures: tuple,
                       prompts: int, prompt_chars: int, continuation_chars: int,
                       seed: int) -> tuple[dict, str]:
    """Repetition statistics per decoding and for the real continuations; the samples as text."""
    span = prompt_chars + continuation_chars
    starts = prompt_positions(len(val_text), prompts, span)
    prompt_texts = [val_text[s:s + prompt_chars] for s in starts]
    real = [val_text[s + prompt_chars:s + span] for s in starts]
    prompt_ids = [encode_known(p, itos)[0].tolist() for p in prompt_texts]
    stats, shown = {}, []
    for temperature in temperatures:
        label = decode_label(temperature)
        new = continuations(model, prompt_ids, continuation_chars, temperature, seed)
        texts = ["".join(itos[i] for i in row) for row in new]
        stats[label] = repetition_stats(texts)
        shown += [f"===== {label}, prompt {k}: {prompt_texts[k]!r}\n{t}\n" for k, t in
                  enumerate(texts[:2])]
    stats["real text"] = repetition_stats(real)
    return stats, "\n".join(shown)


def plot_repetition(result: dict, path: Path) -> None:
    """Repeated n-gram shares and the longest loop against the temperature (greedy at 0), with
    the real text's value as a dashed line; error bars: std over seeds."""
    rows = result["table"]["repetition"]
    temps = result["configs"]["failure"]["temperatures"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, colour in (("char4_repeat", "char 4-grams", "C0"),
                               ("word3_repeat", "word 3-grams", "C1")):
        values = [rows[decode_label(t)][key] or [np.nan, np.nan] for t in temps]
        axes[0].errorbar(temps, [v[0] for v in values], [v[1] for v in values], marker="o",
                         color=colour, capsize=3, label=f"model: {label}")
        if rows["real text"][key] is not None:
            axes[0].axhline(rows["real text"][key][0], color=colour, ls="--",
                            label=f"real text: {label}")
    loops = [rows[decode_label(t)]["longest_loop"] for t in temps]
    axes[1].errorbar(temps, [v[0] for v in loops], [v[1] for v in loops], marker="o",
                     capsize=3, label="model")
    axes[1].axhline(rows["real text"]["longest_loop"][0], color="k", ls="--", label="real text")
    axes[0].set_ylabel("share repeating an earlier n-gram")
    axes[1].set_ylabel("longest exact loop (characters, mean over prompts)")
    for ax in axes:
        ax.set_xlabel("temperature (0 = greedy)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"repetition in {result['configs']['failure']['continuation_chars']}-character "
                 f"continuations ({result['seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

