"""The failure-modes experiment: train (or reuse) one char-level GPT per seed with phase 7's
``train``, take every measurement of this package on it, and write ``results.json``,
``results.md`` (mean ± standard deviation over seeds), the plots and the text files of
examples."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from phase_01_nn.vocabulary import train_val_split
from phase_07_gpt.checkpoint import CHECKPOINT_FILE
from phase_07_gpt.dataset import read_text
from phase_07_gpt.experiment import cell, mean_spread
from phase_07_gpt.presets import TrainConfig, preset
from phase_07_gpt.sample import load_run
from phase_07_gpt.train import train
from phase_09_modern.research.failure_modes.calibration import calibration, plot_reliability
from phase_09_modern.research.failure_modes.confident_errors import (
    confident_errors,
    error_examples,
    show_char,
)
from phase_09_modern.research.failure_modes.repetition import (
    measure_repetition,
    plot_repetition,
)
from phase_09_modern.research.failure_modes.scoring import (
    encode_known,
    next_token_logits,
    softmax,
)
from phase_09_modern.research.failure_modes.shift import (
    corpus_row,
    measure_shift,
    plot_losses,
    shift_corpus,
)

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

    others = {"shakespeare train": train_text,
              **{name: shift_corpus(name) for name in failure.shift}}
    shift = {"shakespeare val": corpus_row(len(val_ids), Counter(), logits, targets,
                                           bins=failure.bins, confident=failure.confident),
             **measure_shift(model, itos, others, max_tokens=failure.shift_tokens,
                             bins=failure.bins, confident=failure.confident)}

    repetition, samples = measure_repetition(
        model, itos, val_text, temperatures=failure.temperatures, prompts=failure.prompts,
        prompt_chars=failure.prompt_chars, continuation_chars=failure.continuation_chars, seed=seed)
    (out / f"samples-seed{seed}.txt").write_text(samples, encoding="utf-8")
    return {"seed": seed, "vocab_size": len(itos), "trainer_val_loss": summary["final_val_loss"],
            "train_seconds": summary["train_seconds"], "val_scored": len(targets),
            "repetition": repetition, "calibration": calib, "confident_errors": errors,
            "shift": shift}


def mean_std(values: list) -> list | None:
    """[mean, standard deviation] of the values that are not None (phase 7's ``mean_spread``),
    as a JSON list, or None when there is none."""
    mean, spread = mean_spread(values)
    return None if mean is None else [mean, spread]


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
    return cell(pair or (None, None), digits)


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

