"""Failure modes of a trained char-level GPT: repetition, calibration, distribution shift and
confident errors, measured on phase 7's model.

- Repetition (Holtzman et al. 2020): greedy decoding falls into loops that sampling escapes.
  Measured as the share of character 4-grams and word 3-grams of a continuation that repeat an
  earlier one of the same continuation, and the longest exact loop (a stretch made of at least
  two back-to-back copies of one unit), against the sampling temperature, beside the same
  statistics on the real text that follows each prompt.
- Calibration (Guo et al. 2017): the expected calibration error over 15 equal-width bins of the
  top-1 probability (Naeini et al. 2015), before and after temperature scaling, the one-parameter
  fix fitted on one half of the validation split and measured on the other.
- Distribution shift: the loss in nats per character on Shakespeare's validation text against
  text of other kinds (this project's notes and source, makemore's names). Characters the model
  never saw cannot be encoded: they are removed before scoring and their share is reported.
- Confident errors: the predictions that put >= 0.9 on a character that is not the next one.

The measurements are NumPy functions of probabilities and strings; the runner trains (or
reuses) one model per seed with phase 7's ``train`` and writes ``results.json``,
``results.md`` (mean ± standard deviation over seeds), the plots and text files of examples.
Notes: ``phase_09_modern/notes/22_failure_modes.md``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from phase_01_nn.vocabulary import train_val_split  # noqa: E402
from phase_07_gpt.checkpoint import CHECKPOINT_FILE  # noqa: E402
from phase_07_gpt.dataset import read_text  # noqa: E402
from phase_07_gpt.generate import generate  # noqa: E402
from phase_07_gpt.presets import TrainConfig, preset  # noqa: E402
from phase_07_gpt.sample import load_run  # noqa: E402
from phase_07_gpt.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.2)  # 0 = greedy


@dataclass(frozen=True)
class FailureConfig:
    """What is measured on each trained model (the sizes differ in how much)."""
    temperatures: tuple = TEMPERATURES
    prompts: int = 8  # prompts from the validation split, evenly spaced
    prompt_chars: int = 48
    continuation_chars: int = 500
    eval_tokens: int = 0  # validation predictions scored; 0 = the whole split
    shift: tuple = ("notes", "code", "names")  # "notes", "code", a corpus name or a file path
    shift_tokens: int = 60_000  # predictions scored per other corpus, spread over all of it
    bins: int = 15
    confident: float = 0.9
    examples: int = 30  # confident errors written out in context, per seed

    def __post_init__(self) -> None:
        if not self.temperatures or min(self.temperatures) < 0:
            raise ValueError(f"temperatures must be >= 0 (0 = greedy), got {self.temperatures}")
        for name in ("prompts", "prompt_chars", "continuation_chars", "bins", "shift_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.confident < 1.0:
            raise ValueError(f"confident must be in (0, 1), got {self.confident}")


SIZES = {
    # a small model trained for about a minute on one thread
    "small": (dict(block_size=64, n_layer=2, n_head=2, n_embd=48, batch_size=12,
                   max_iters=800, warmup_iters=50, eval_interval=400, eval_iters=20),
              FailureConfig(prompts=4, eval_tokens=30_000, shift_tokens=15_000, examples=15)),
    # phase 7's shakespeare-char preset with GPT-2's initialisation, as the notes measured it
    "full": (dict(init="gpt2"), FailureConfig()),
}


def size_configs(size: str, seed: int, overrides: dict | None = None
                 ) -> tuple[TrainConfig, FailureConfig]:
    """The training and measuring configs of a size; ``overrides`` may name fields of either."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    train_fields = {f.name for f in fields(TrainConfig)}
    failure_fields = {f.name for f in fields(FailureConfig)}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - train_fields - failure_fields)
    if unknown:
        raise ValueError(f"unknown override(s) {unknown}; expected fields of TrainConfig or "
                         f"FailureConfig")
    base = "shakespeare-char" if size == "full" else "tiny"
    train_over, failure = SIZES[size]
    train_config = preset(base, **{**train_over, "seed": seed, "device": "cpu", "threads": 1,
                                   **{k: v for k, v in overrides.items() if k in train_fields}})
    failure = replace(failure, **{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in overrides.items() if k in failure_fields})
    return train_config, failure


# ---------------------------------------------------------------- repetition


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


# ---------------------------------------------------------------- calibration


def softmax(logits: np.ndarray) -> np.ndarray:
    """logits: (N, V) -> probabilities (N, V), in float64."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict:
    """Equal-width bins of the top-1 probability: bin m holds (m/M, (m+1)/M] (the first also 0).
    Per bin: ``count``, mean ``confidence`` and ``accuracy`` (None where empty)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.shape != correct.shape or confidence.ndim != 1 or len(confidence) == 0:
        raise ValueError(f"need two equal, non-empty 1-D arrays, got {confidence.shape} and "
                         f"{correct.shape}")
    if confidence.min() < 0 or confidence.max() > 1:
        raise ValueError("confidences must lie in [0, 1]")
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, bins) / count
        acc = np.bincount(index, correct, bins) / count

    def per_bin(values: np.ndarray) -> list:
        return [None if c == 0 else float(v) for c, v in zip(count, values, strict=True)]

    return {"edges": np.linspace(0, 1, bins + 1).tolist(), "count": count.tolist(),
            "confidence": per_bin(conf), "accuracy": per_bin(acc)}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = 15) -> float:
    """ECE = sum over bins of (share of predictions in the bin) * |accuracy - mean confidence|
    (Naeini et al. 2015), with ``reliability_bins``' equal-width bins."""
    table = reliability_bins(confidence, correct, bins)
    n = sum(table["count"])
    return sum(c / n * abs(a - p) for c, a, p in zip(table["count"], table["accuracy"],
                                                    table["confidence"], strict=True) if c)


def top1(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """probs: (N, V), targets: (N,) -> the top-1 probability and whether it was right."""
    return probs.max(axis=-1), probs.argmax(axis=-1) == targets


def mean_nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """The mean of -log softmax(logits / temperature)[target], in nats."""
    z = logits.astype(np.float64) / temperature
    top = z.max(axis=-1)
    log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=-1))
    return float(np.mean(log_norm - z[np.arange(len(targets)), targets]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, *, low: float = 0.01,
                    high: float = 100.0, iters: int = 60) -> float:
    """The T in [low, high] that minimises ``mean_nll(logits, targets, T)`` (Guo et al. 2017).
    The loss is convex in b = 1/T, with derivative mean(E_softmax(b z)[z] - z_target), so the
    root of that increasing function is found by bisection on log b."""
    z = logits.astype(np.float64)
    picked = z[np.arange(len(targets)), targets]
    lo, hi = np.log(1.0 / high), np.log(1.0 / low)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        slope = np.mean((softmax(np.exp(mid) * z) * z).sum(axis=-1) - picked)
        lo, hi = (mid, hi) if slope < 0 else (lo, mid)
    return float(1.0 / np.exp(0.5 * (lo + hi)))


def calibration(logits: np.ndarray, targets: np.ndarray, bins: int = 15) -> dict:
    """ECE and NLL on the second half of the predictions, before and after temperature scaling
    fitted on the first half; the reliability bins of both."""
    half = len(targets) // 2
    if half < 1:
        raise ValueError(f"calibration needs at least 2 predictions, got {len(targets)}")
    temperature = fit_temperature(logits[:half], targets[:half])
    held, held_targets = logits[half:], targets[half:]
    raw = top1(softmax(held), held_targets)
    scaled = top1(softmax(held / temperature), held_targets)
    return {"accuracy": float(raw[1].mean()), "mean_confidence": float(raw[0].mean()),
            "ece": expected_calibration_error(*raw, bins),
            "temperature": temperature,
            "ece_scaled": expected_calibration_error(*scaled, bins),
            "nll": mean_nll(held, held_targets), "nll_scaled":
                mean_nll(held, held_targets, temperature),
            "bins": reliability_bins(*raw, bins), "bins_scaled": reliability_bins(*scaled, bins)}


# ---------------------------------------------------------------- confident errors


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


# ---------------------------------------------------------------- corpora and the model


def encode_known(text: str, itos: list[str]) -> tuple[np.ndarray, Counter]:
    """The ids of the characters of ``text`` the vocabulary ``itos`` holds, and a count of the
    others, which are removed (the model then reads the text without them)."""
    stoi = {ch: i for i, ch in enumerate(itos)}
    skipped = Counter(ch for ch in text if ch not in stoi)
    ids = np.fromiter((stoi[ch] for ch in text if ch in stoi), dtype=np.int64)
    return ids, skipped


def shift_corpus(name: str) -> str:
    """``notes``: every ``*/notes/*.md`` of this repository; ``code``: every ``phase_*/*.py``
    (tests included), in path order; otherwise a corpus name or a file path (phase 7's
    ``read_text``)."""
    if name in ("notes", "code"):
        pattern = "phase_*/notes/*.md" if name == "notes" else "phase_*/**/*.py"
        return "\n".join(p.read_text(encoding="utf-8") for p in sorted(ROOT.glob(pattern)))
    return read_text(name)


@torch.no_grad()
def next_token_logits(model, ids: np.ndarray, max_tokens: int = 0,
                      batch: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (N, V) float32 for the next token at every position of windows of block_size + 1
    tokens that follow each other (sharing one token, so every target is scored once, with 1 to
    block_size tokens of context, as the trainer's loss averages); with ``max_tokens``, evenly
    spaced whole windows up to about that many predictions. Also the targets (N,) and each
    prediction's position in ``ids`` (its target is ``ids[position + 1]``)."""
    block = model.config.block_size
    if len(ids) < 2:
        raise ValueError(f"a text of {len(ids)} known characters has nothing to predict")
    starts = list(range(0, len(ids) - 1, block))
    tail = starts.pop() if starts[-1] + block + 1 > len(ids) else None
    if max_tokens and (len(starts) + (tail is not None)) * block > max_tokens and starts:
        keep = max(max_tokens // block, 1)
        starts = [starts[i] for i in np.linspace(0, len(starts) - 1, keep).round().astype(int)]
        tail = None
    groups = [starts[i:i + batch] for i in range(0, len(starts), batch)]
    if tail is not None:
        groups.append([tail])
    logits, targets, positions = [], [], []
    for group in groups:
        length = min(block, len(ids) - 1 - group[0])  # block, except for the tail
        windows = np.stack([ids[s:s + length + 1] for s in group])
        out, _ = model(torch.from_numpy(windows[:, :-1]))
        logits.append(out.float().numpy().reshape(-1, out.shape[-1]))
        targets.append(windows[:, 1:].reshape(-1))
        positions.append((np.asarray(group)[:, None] + np.arange(length)).reshape(-1))
    return np.concatenate(logits), np.concatenate(targets), np.concatenate(positions)


def decode_label(temperature: float) -> str:
    return "greedy" if temperature == 0 else f"T = {temperature:g}"


def continuations(model, ids: list[list[int]], length: int, temperature: float,
                  seed: int) -> list[list[int]]:
    """``length`` new tokens after each prompt (one batch, phase 7's ``generate``)."""
    prompt = torch.tensor(ids, dtype=torch.long)
    out = generate(model, prompt, length, temperature=temperature, seed=seed)
    return out[:, prompt.shape[1]:].tolist()


def measure_repetition(model, itos: list[str], val_text: str, failure: FailureConfig,
                       seed: int) -> tuple[dict, str]:
    """Repetition statistics per decoding and for the real continuations; the samples as text."""
    span = failure.prompt_chars + failure.continuation_chars
    starts = prompt_positions(len(val_text), failure.prompts, span)
    prompts = [val_text[s:s + failure.prompt_chars] for s in starts]
    real = [val_text[s + failure.prompt_chars:s + span] for s in starts]
    prompt_ids = [encode_known(p, itos)[0].tolist() for p in prompts]
    stats, shown = {}, []
    for temperature in failure.temperatures:
        label = decode_label(temperature)
        new = continuations(model, prompt_ids, failure.continuation_chars, temperature, seed)
        texts = ["".join(itos[i] for i in row) for row in new]
        stats[label] = repetition_stats(texts)
        shown += [f"===== {label}, prompt {k}: {prompts[k]!r}\n{t}\n" for k, t in
                  enumerate(texts[:2])]
    stats["real text"] = repetition_stats(real)
    return stats, "\n".join(shown)


def ensure_model(train_config: TrainConfig, run_dir: Path, log) -> dict:
    """Train into ``run_dir`` unless a finished run with this config is there (a stopped one
    with this config is resumed from its checkpoint); the run's summary."""
    summary_file, config_file = run_dir / "summary.json", run_dir / "config.json"
    same = False
    if config_file.exists():
        saved = json.loads(config_file.read_text(encoding="utf-8"))
        saved.pop("preset", None)
        same = saved == train_config.to_dict()
    if same and summary_file.exists():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        if summary["steps"] == train_config.max_iters:  # a stopped run writes one too
            return summary
    resume = same and (run_dir / CHECKPOINT_FILE).exists()
    log(f"training {run_dir} ({train_config.max_iters} steps{', resumed' if resume else ''})")
    return train(train_config, run_dir, resume=resume, quiet=True, preset="failure-modes")


def measure_seed(train_config: TrainConfig, failure: FailureConfig, out: Path, seed: int,
                 summary: dict) -> dict:
    """Every measurement on the trained model of one seed (``out/model-seed{seed}``, whose
    training ``summary`` is given); examples and samples written beside."""
    model, tokenizer = load_run(out / f"model-seed{seed}")
    itos = tokenizer.vocabulary.itos
    train_text, val_text = train_val_split(read_text(train_config.data))
    val_ids, _ = encode_known(val_text, itos)

    logits, targets, positions = next_token_logits(model, val_ids, failure.eval_tokens)
    probs = softmax(logits)
    calib = calibration(logits, targets, failure.bins)
    errors = confident_errors(probs, targets, itos, threshold=failure.confident)
    wrong_rows = np.flatnonzero((probs.max(-1) >= failure.confident)
                                & (probs.argmax(-1) != targets))
    shown = "".join(itos[i] for i in val_ids)
    text_file = out / f"confident_errors-seed{seed}.txt"
    text_file.write_text(
        f"# predictions with top-1 probability >= {failure.confident} that are wrong, seed "
        f"{seed}: the text before, then [predicted probability / actual]\n"
        + error_examples(shown, probs, targets, positions, wrong_rows, itos,
                         count=failure.examples, seed=seed), encoding="utf-8")

    corpora = {"shakespeare val": (len(val_ids), Counter(), logits, targets)}
    for name in ("shakespeare train", *failure.shift):
        text = train_text if name == "shakespeare train" else shift_corpus(name)
        ids, skipped = encode_known(text, itos)
        c_logits, c_targets, _ = next_token_logits(model, ids, failure.shift_tokens)
        corpora[name] = (len(text), skipped, c_logits, c_targets)
    shift = {}
    for name, (chars, skipped, c_logits, c_targets) in corpora.items():
        confidence, correct = top1(softmax(c_logits), c_targets)
        shift[name] = {"loss": mean_nll(c_logits, c_targets), "accuracy": float(correct.mean()),
                       "ece": expected_calibration_error(confidence, correct, failure.bins),
                       "confident_wrong": float(((confidence >= failure.confident)
                                                 & ~correct).mean()),
                       "scored": len(c_targets), "chars": chars,
                       "skipped_share": sum(skipped.values()) / chars,
                       "top_skipped": [[show_char(ch), n] for ch, n in skipped.most_common(8)]}

    repetition, samples = measure_repetition(model, itos, val_text, failure, seed)
    (out / f"samples-seed{seed}.txt").write_text(samples, encoding="utf-8")
    return {"seed": seed, "vocab_size": len(itos), "trainer_val_loss": summary["final_val_loss"],
            "train_seconds": summary["train_seconds"], "val_scored": len(targets),
            "repetition": repetition, "calibration": calib, "confident_errors": errors,
            "shift": shift}


# ---------------------------------------------------------------- the runner


def mean_std(values: list) -> list | None:
    """[mean, standard deviation] of the values that are not None (std 0 for one value)."""
    kept = [v for v in values if v is not None]
    if not kept:
        return None
    return [statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0]


def summarise(per_seed: list[dict]) -> dict:
    """Every number of the per-seed results as [mean, std] over seeds, same nesting; lists (bins,
    pairs) are left out."""
    first = per_seed[0]
    table = {}
    for key, value in first.items():
        if isinstance(value, dict):
            table[key] = summarise([r[key] for r in per_seed])
        elif isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
            table[key] = mean_std([r[key] for r in per_seed])
    return table


def pooled_pairs(per_seed: list[dict], top: int = 15) -> list[list]:
    """The (predicted, actual) pairs of the confident errors, counts summed over seeds."""
    counts: Counter = Counter()
    for run in per_seed:
        for predicted, actual, n in run["confident_errors"]["top_pairs"]:
            counts[(predicted, actual)] += n
    return [[p, a, n] for (p, a), n in counts.most_common(top)]


def run_failure_modes(out: str | Path, *, size: str = "small", seeds: int = 3,
                      overrides: dict | None = None, log=print) -> dict:
    """Train (or reuse) one char model per seed in ``out/model-seed{N}``, measure it (each seed's
    measurements are kept in ``out/seed{N}.json`` and not redone), and write ``results.json``,
    ``results.md`` and the plots."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in range(seeds):
        train_config, failure = size_configs(size, seed, overrides)
        if train_config.tokenizer != "char":
            raise ValueError("the failure-mode measurements read characters; use the char "
                             f"tokenizer, not {train_config.tokenizer!r}")
        configs = {"train": train_config.to_dict(), "failure": asdict(failure)}
        cache = out / f"seed{seed}.json"
        if cache.exists() and json.loads(cache.read_text())["configs"] == \
                json.loads(json.dumps(configs)):
            result = json.loads(cache.read_text(encoding="utf-8"))
        else:
            summary = ensure_model(train_config, out / f"model-seed{seed}", log)
            started = time.perf_counter()
            result = measure_seed(train_config, failure, out, seed, summary)
            result.update(measure_seconds=round(time.perf_counter() - started, 1),
                          configs=configs)
            cache.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        per_seed.append(result)
        calib = result["calibration"]
        log(f"seed {seed}: val loss {result['shift']['shakespeare val']['loss']:.3f}, "
            f"ECE {calib['ece']:.4f} -> {calib['ece_scaled']:.4f} at T = "
            f"{calib['temperature']:.3f}, greedy 4-gram repeats "
            f"{result['repetition']['greedy']['char4_repeat']:.3f}")
    numbers = [{k: v for k, v in r.items() if k != "configs"} for r in per_seed]
    table = summarise([{k: v for k, v in r.items() if k != "seed"} for r in numbers])
    result = {"experiment": "failure-modes", "size": size, "seeds": seeds,
              "configs": per_seed[0]["configs"],
              "table": table, "top_pairs": pooled_pairs(per_seed),
              "runs": numbers}
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(failure_markdown(result), encoding="utf-8")
    plot_repetition(result, out / "repetition.png")
    plot_reliability(result, out / "reliability.png")
    plot_losses(result, out / "loss_per_corpus.png")
    return result


def _cell(pair, digits: int = 3) -> str:
    return "—" if pair is None else f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def failure_markdown(result: dict) -> str:
    """The tables of a ``run_failure_modes`` result, mean ± standard deviation over seeds."""
    table, failure = result["table"], result["configs"]["failure"]
    train_config = result["configs"]["train"]
    lines = [
        "# failure modes of a char-level GPT", "",
        f"size {result['size']} ({train_config['n_layer']} layers, width "
        f"{train_config['n_embd']}, context {train_config['block_size']}, "
        f"{train_config['max_iters']} steps), {result['seeds']} seeds; per seed "
        f"{table['train_seconds'][0]:.0f} s of training steps and "
        f"{table['measure_seconds'][0]:.0f} s of measurement on average; every number is mean "
        "± standard deviation over the seeds", "",
        f"## repetition in {failure['continuation_chars']}-character continuations of "
        f"{failure['prompts']} validation prompts", "",
        "| decoding | repeated char 4-grams | repeated word 3-grams | longest loop (chars) |",
        "|---|---|---|---|"]
    for label, row in table["repetition"].items():
        lines.append(f"| {label} | {_cell(row['char4_repeat'])} | {_cell(row['word3_repeat'])} "
                     f"| {_cell(row['longest_loop'], 1)} |")
    c = table["calibration"]
    lines += [
        "", f"## calibration of the next character ({failure['bins']} equal-width bins of the "
        "top-1 probability; temperature fitted on the first half of the validation predictions, "
        "everything measured on the second half)", "",
        "| accuracy | mean top-1 probability | ECE | fitted T | ECE at T | NLL | NLL at T |",
        "|---|---|---|---|---|---|---|",
        f"| {_cell(c['accuracy'])} | {_cell(c['mean_confidence'])} | {_cell(c['ece'], 4)} | "
        f"{_cell(c['temperature'])} | {_cell(c['ece_scaled'], 4)} | {_cell(c['nll'])} | "
        f"{_cell(c['nll_scaled'])} |",
        "", "## loss per corpus (nats per character; unknown characters removed)", "",
        "| corpus | characters | scored | unknown share | loss | top-1 accuracy | ECE | "
        f"wrong at >= {failure['confident']} | most frequent unknown characters (seed 0) |",
        "|---|---|---|---|---|---|---|---|---|"]
    for name, row in table["shift"].items():
        skipped = ", ".join(f"{ch} {n}" for ch, n in result["runs"][0]["shift"][name]
                            ["top_skipped"])
        lines.append(f"| {name} | {row['chars'][0]:.0f} | {row['scored'][0]:.0f} | "
                     f"{_cell(row['skipped_share'], 4)} | {_cell(row['loss'])} | "
                     f"{_cell(row['accuracy'])} | {_cell(row['ece'], 4)} | "
                     f"{_cell(row['confident_wrong'], 4)} | {skipped or '—'} |")
    e = table["confident_errors"]
    lines += [
        "", f"## confident errors (top-1 probability >= {failure['confident']}, wrong)", "",
        "| count per seed | share of all predictions | share of predictions that are "
        "confident | wrong when confident |", "|---|---|---|---|",
        f"| {_cell(e['count'], 1)} | {_cell(e['rate'], 5)} | {_cell(e['confident_share'])} | "
        f"{_cell(e['wrong_when_confident'])} |", "",
        "most frequent (predicted, actual), counts summed over the seeds:", "",
        "| predicted | actual | count |", "|---|---|---|"]
    lines += [f"| {show_char(p)} | {show_char(a)} | {n} |" for p, a, n in result["top_pairs"]]
    return "\n".join(lines) + "\n"


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


def plot_reliability(result: dict, path: Path) -> None:
    """Accuracy against mean top-1 probability per bin, before and after temperature scaling,
    one line per seed, with the share of predictions per bin underneath."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), height_ratios=[3, 1], sharex=True)
    for column, (key, title) in enumerate((("bins", "as trained (T = 1)"),
                                           ("bins_scaled", "after temperature scaling"))):
        top, bottom = axes[0, column], axes[1, column]
        top.plot([0, 1], [0, 1], "k:", label="perfect calibration")
        for run in result["runs"]:
            bins = run["calibration"][key]
            kept = [i for i, n in enumerate(bins["count"]) if n]
            top.plot([bins["confidence"][i] for i in kept], [bins["accuracy"][i] for i in kept],
                     "o-", ms=4, label=f"seed {run['seed']}, ECE "
                     f"{run['calibration']['ece' if key == 'bins' else 'ece_scaled']:.4f}")
        first = result["runs"][0]["calibration"][key]
        edges = np.asarray(first["edges"])
        share = np.asarray(first["count"]) / sum(first["count"])
        bottom.bar(edges[:-1], share, width=np.diff(edges), align="edge", edgecolor="k")
        top.set_title(title)
        top.set_ylabel("accuracy in the bin")
        top.legend(fontsize=7)
        top.grid(alpha=0.3)
        bottom.set_xlabel("top-1 probability (15 equal-width bins)" if len(edges) == 16 else
                          "top-1 probability")
        bottom.set_ylabel("share (seed 0)")
    fig.suptitle("reliability of the next-character probability (validation, second half)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
