"""Length extrapolation: learned, sinusoidal, RoPE, ALiBi (and no position signal at all) in
one GPT, trained on short windows and evaluated on longer ones.

Every condition is phase 7's char GPT with one thing changed, how position enters:

- ``learned``: a trained table added to the token embeddings (GPT-2). It has one row per
  position up to the longest evaluation length, but training only ever reads the first
  ``block_size`` rows; the rest keep their initial N(0, 0.02^2) values (shrunk by weight
  decay), which is what such a model meets beyond its training length;
- ``sinusoidal``: the fixed sin/cos table of Vaswani et al. (2017), defined at every position,
  scaled to the token embeddings' initial RMS (0.02);
- ``rope``: no embedding; queries and keys turned by position-dependent angles (Su et al.
  2021, phase 9's ``llama`` functions), so scores depend on the offset i - j;
- ``alibi``: no embedding; the score of query i for key j gets -m_h (i - j), the per-head slopes
  of Press et al. (2021) (phase 9's ``alibi_slopes``);
- ``none``: no position signal; the causal mask alone tells positions apart (Haviv et al. 2022).

Parameters other than the learned table are the same for every condition, and each seed starts
them from the same values. Training is phase 7's ``train`` (its optimizer, schedule, clipping,
batches, checkpoints and resume) at context ``block_size``. The evaluation cuts one stretch of
the validation split into non-overlapping windows of each evaluation length (the same tokens for
every length) and measures the mean loss, the loss at each position of the window, and the
entropy of every attention distribution.
Notes: ``phase_09_modern/notes/23_positional_extrapolation.md``.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from phase_07_gpt.checkpoint import CHECKPOINT_FILE, load_checkpoint  # noqa: E402
from phase_07_gpt.dataset import TokenData, build_tokenizer, read_text  # noqa: E402
from phase_07_gpt.experiment import cell, mean_spread  # noqa: E402
from phase_07_gpt.model import GPT, CausalSelfAttention  # noqa: E402
from phase_07_gpt.presets import TrainConfig  # noqa: E402
from phase_07_gpt.train import train  # noqa: E402
from phase_09_modern.models.llama import apply_rope, rope_cache  # noqa: E402
from phase_09_modern.ops.alibi import alibi_slopes  # noqa: E402

ENCODINGS = ("learned", "sinusoidal", "rope", "alibi", "none")
LABELS = {"learned": "learned", "sinusoidal": "sinusoidal", "rope": "RoPE", "alibi": "ALiBi",
          "none": "none (NoPE)"}
ROPE_BASE = 10000.0
SINUSOID_RMS = 0.02  # the sinusoidal table is scaled to the token embeddings' initial std

# small: a minute or two on one thread for the whole grid; full: the measured run of the notes.
SIZES: dict[str, tuple[TrainConfig, tuple[int, ...], int]] = {
    # (training config, evaluation lengths, validation tokens evaluated; 0 = all that fit)
    "small": (TrainConfig(block_size=32, n_layer=2, n_head=4, n_embd=64, batch_size=16,
                          max_iters=300, warmup_iters=30, lr=2e-3, min_lr=2e-4,
                          eval_interval=150, eval_iters=10, device="cpu", threads=1),
              (32, 64, 128), 16_384),
    "full": (TrainConfig(block_size=128, n_layer=4, n_head=4, n_embd=128, batch_size=16,
                         max_iters=1200, warmup_iters=100, lr=2e-3, min_lr=2e-4,
                         eval_interval=250, eval_iters=20, device="cpu", threads=1),
             (128, 256, 512), 0),
}


class NoPositions(nn.Module):
    """The ``wpe`` of a model whose attention handles position itself: adds nothing."""

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), device=positions.device)


class RelativeAttention(CausalSelfAttention):
    """Phase 7's attention (same ``c_attn`` and ``c_proj``) with position inside it: ``rope``
    turns q and k by angle p / base^(2i/d) for position p; ``alibi`` adds -m_h (i - j) to the
    score of query i and key j; ``none`` leaves the causal mask as the only position signal."""

    def __init__(self, attention: CausalSelfAttention, encoding: str, max_len: int) -> None:
        nn.Module.__init__(self)
        self.n_head, self.dropout = attention.n_head, attention.dropout
        self.c_attn, self.c_proj = attention.c_attn, attention.c_proj
        self.resid_dropout = attention.resid_dropout
        self.encoding = encoding
        head_dim = self.c_attn.in_features // self.n_head
        if encoding == "rope":
            cos, sin = rope_cache(max_len, head_dim, ROPE_BASE)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
        elif encoding == "alibi":
            slopes = torch.tensor(alibi_slopes(self.n_head), dtype=torch.float32)
            self.register_buffer("slopes", slopes, persistent=False)
        elif encoding != "none":
            raise ValueError(f"RelativeAttention handles rope, alibi and none, not {encoding!r}")

    def score_bias(self, t: int, device: torch.device) -> torch.Tensor:
        """(H, T, T): -m_h (i - j) on and below the diagonal, -inf above (ALiBi)."""
        index = torch.arange(t, device=device)
        offset = (index[:, None] - index[None, :]).float()
        bias = -self.slopes[:, None, None] * offset
        return bias.masked_fill(offset < 0, float("-inf"))

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (a.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for a in (q, k, v))
        if self.encoding == "rope":
            q, k = (apply_rope(a, self.cos[:t], self.sin[:t]) for a in (q, k))
        bias = self.score_bias(t, x.device) if self.encoding == "alibi" else None
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
            if bias is None:
                future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
                scores = scores.masked_fill(future, float("-inf"))
            else:
                scores = scores + bias
            weights = scores.softmax(dim=-1)
            y = F.dropout(weights, self.dropout, self.training) @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, is_causal=bias is None,
                dropout_p=self.dropout if self.training else 0.0)
        y = self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(b, t, c)))
        return y, weights


def position_gpt(config: TrainConfig, vocab_size: int, encoding: str, max_len: int) -> GPT:
    """Phase 7's GPT for ``config`` with position handled by ``encoding``, able to read
    ``max_len`` tokens (its ``block_size``; training still uses ``config.block_size``)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if max_len < config.block_size:
        raise ValueError(f"max_len ({max_len}) must be >= the training context "
                         f"block_size ({config.block_size})")
    # "sinusoidal" builds the fixed table; the relative encodings replace it by NoPositions, and
    # keep positions="sinusoidal" in the config so num_params has no table to subtract.
    positions = "learned" if encoding == "learned" else "sinusoidal"
    model = GPT(replace(config, block_size=max_len, positions=positions)
                .model_config(vocab_size))
    if encoding == "sinusoidal":
        # The table's entries have RMS 1/sqrt(2), 35 times the token embeddings' 0.02: added
        # as is, it swamps them and a short run stalls near the unigram loss (the small
        # preset: 3.35 nats). Scaled to RMS 0.02 it starts level with them, as the learned
        # table does.
        model.transformer.wpe.table.mul_(SINUSOID_RMS / model.transformer.wpe.table.pow(2)
                                         .mean().sqrt())
    if encoding in ("rope", "alibi", "none"):
        model.transformer.wpe = NoPositions()
        for block in model.transformer.h:
            block.attn = RelativeAttention(block.attn, encoding, max_len)
    return model


def evaluation_windows(tokens: torch.Tensor, lengths: tuple[int, ...], max_tokens: int = 0
                       ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """For each length L: (x, y) of shape (n / L, L), the same first n predicted tokens cut
    into non-overlapping windows, n a multiple of the longest L (at most ``max_tokens`` when
    that is > 0); y is x shifted by one token."""
    longest = max(lengths)
    n = (len(tokens) - 1) // longest * longest
    if max_tokens:
        n = min(n, max(max_tokens // longest, 1) * longest)
    if n == 0:
        raise ValueError(f"the validation split has {len(tokens)} tokens, fewer than one window "
                         f"of {longest} + 1")
    return {length: (tokens[:n].view(-1, length), tokens[1:n + 1].view(-1, length))
            for length in lengths}


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """(..., Tq, Tk) attention weights -> (..., Tq) entropies in nats (0 log 0 = 0)."""
    return -torch.special.xlogy(weights, weights).sum(-1)


@torch.no_grad()
def evaluate_lengths(model: GPT, tokens: torch.Tensor, lengths: tuple[int, ...], *,
                     max_tokens: int = 0, batch_tokens: int = 8192,
                     entropy_windows: int = 8) -> dict[str, dict]:
    """Per evaluation length: the mean loss over every predicted token, the mean loss at each
    position of the window (over the windows), and the attention entropy of each layer (mean
    over heads and queries) and at each query position (mean over layers and heads), from the
    first ``entropy_windows`` windows."""
    was_training = model.training
    model.eval()
    result = {}
    for length, (x, y) in evaluation_windows(tokens, lengths, max_tokens).items():
        per_position = torch.zeros(length, dtype=torch.float64)
        batch = max(batch_tokens // length, 1)
        for start in range(0, len(x), batch):
            logits, _ = model(x[start:start + batch])
            losses = F.cross_entropy(logits.transpose(1, 2), y[start:start + batch],
                                     reduction="none")
            per_position += losses.double().sum(0)
        per_position /= len(x)
        attention = model.inspect(x[:entropy_windows])["attention"]
        entropies = [attention_entropy(w.double()) for w in attention]  # (B, H, T) each
        result[str(length)] = {
            "windows": len(x), "loss": per_position.mean().item(),
            "loss_by_position": per_position.tolist(),
            "entropy_by_layer": [e.mean().item() for e in entropies],
            "entropy_by_position": torch.stack(entropies).mean(dim=(0, 1, 2)).tolist(),
        }
    model.train(was_training)
    return result


def size_config(size: str, overrides: dict | None = None
                ) -> tuple[TrainConfig, tuple[int, ...], int]:
    """The training config, evaluation lengths and evaluated tokens of a size; ``overrides``
    name TrainConfig fields, or ``eval_lengths`` / ``eval_tokens``."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    config, lengths, max_tokens = SIZES[size]
    overrides = dict(overrides or {})
    lengths = tuple(overrides.pop("eval_lengths", lengths))
    max_tokens = overrides.pop("eval_tokens", max_tokens)
    config = replace(config, **overrides)
    if min(lengths) < config.block_size:
        raise ValueError(f"evaluation lengths {lengths} must not be shorter than the training "
                         f"context block_size = {config.block_size}")
    return config, lengths, max_tokens


def train_and_evaluate(config: TrainConfig, encoding: str, lengths: tuple[int, ...],
                       max_tokens: int, run_dir: Path, data: TokenData, quiet: bool = True
                       ) -> dict:
    """Train one condition with phase 7's ``train`` (resuming from ``run_dir`` when it holds a
    checkpoint), then evaluate the final weights at every length."""
    max_len = max(lengths)
    resume = (run_dir / CHECKPOINT_FILE).exists()

    def factory(vocab_size: int) -> GPT:
        return position_gpt(config, vocab_size, encoding, max_len)

    began = time.perf_counter()
    summary = train(config, run_dir, resume=resume, quiet=quiet, model_factory=factory,
                    preset=f"extrapolation-{encoding}")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = factory(data.tokenizer.vocab_size)
    model.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_FILE)["model"])
    evaluated = evaluate_lengths(model, data.val, lengths, max_tokens=max_tokens)
    return {"train": summary, "eval": evaluated,
            "params": model.num_params(non_embedding=False),
            "seconds": round(time.perf_counter() - began, 1)}


def extrapolation_table(runs: list[dict], lengths: tuple[int, ...], block_size: int
                        ) -> list[dict]:
    """Per encoding, mean and spread over seeds: the loss at each length, the loss of the
    positions beyond the training context at the longest length, and the attention entropy
    (mean over layers) at each length."""
    longest = str(max(lengths))
    rows = []
    for encoding in ENCODINGS:
        mine = [r for r in runs if r["encoding"] == encoding]
        if not mine:
            continue
        rows.append({
            "encoding": encoding, "runs": len(mine), "params": mine[0]["params"],
            "loss": {str(n): mean_spread([r["eval"][str(n)]["loss"] for r in mine])
                     for n in lengths},
            "loss_inside": mean_spread([statistics.fmean(
                r["eval"][longest]["loss_by_position"][:block_size]) for r in mine]),
            "loss_beyond": mean_spread([statistics.fmean(
                r["eval"][longest]["loss_by_position"][block_size:]) for r in mine])
            if max(lengths) > block_size else (None, None),
            "entropy": {str(n): mean_spread([statistics.fmean(
                r["eval"][str(n)]["entropy_by_layer"]) for r in mine]) for n in lengths},
            "seconds": mean_spread([r["seconds"] for r in mine]),
        })
    return rows


def extrapolation_markdown(result: dict) -> str:
    base, lengths = result["base"], result["lengths"]
    block, longest = base["block_size"], max(lengths)
    windows = result["runs"][0]["eval"]
    lines = [
        "# positional encodings: trained at one context, evaluated at longer ones", "",
        f"size {result['size']} ({base['n_layer']} layers, {base['n_head']} heads, width "
        f"{base['n_embd']}, trained at context {block} for {base['max_iters']} steps of "
        f"{base['batch_size']} windows), {result['seeds']} seeds, {result['seconds']:.0f} s of "
        "training and evaluation in all. Loss in "
        f"nats per character over the same {windows[str(longest)]['windows'] * longest:,} "
        "validation characters at every length, in non-overlapping windows; mean ± standard "
        "deviation over seeds.", "",
        "| encoding | params | " + " | ".join(f"loss at {n}" for n in lengths)
        + f" | loss at positions 0-{block - 1} of {longest} | loss at positions {block}-"
        f"{longest - 1} of {longest} | s per run |",
        "|---|---|" + "---|" * (len(lengths) + 3)]
    for row in result["table"]:
        lines.append(f"| {LABELS[row['encoding']]} | {row['params']:,} | "
                     + " | ".join(cell(row["loss"][str(n)]) for n in lengths)
                     + f" | {cell(row['loss_inside'])} | {cell(row['loss_beyond'])} | "
                     f"{cell(row['seconds'], 0)} |")
    lines += ["", "Attention entropy in nats (mean over layers, heads and query positions of "
              "the first windows; uniform attention over all keys would give about "
              + ", ".join(f"{_uniform_entropy(n):.2f} at {n}" for n in lengths) + "):", "",
              "| encoding | " + " | ".join(f"entropy at {n}" for n in lengths) + " |",
              "|---|" + "---|" * len(lengths)]
    for row in result["table"]:
        lines.append(f"| {LABELS[row['encoding']]} | "
                     + " | ".join(cell(row["entropy"][str(n)]) for n in lengths) + " |")
    return "\n".join(lines) + "\n"


def _uniform_entropy(length: int) -> float:
    """Mean over query positions i of log(i + 1): causal attention spread evenly."""
    return statistics.fmean(math.log(i + 1) for i in range(length))


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Means of consecutive blocks of ``width`` positions (the last block may be shorter)."""
    return np.array([values[i:i + width].mean() for i in range(0, len(values), width)])


def plot_extrapolation(result: dict, out: Path) -> None:
    """loss_vs_length.png, loss_by_position.png and entropy_by_position.png."""
    runs, lengths = result["runs"], result["lengths"]
    block, longest = result["base"]["block_size"], max(lengths)
    encodings = [e for e in ENCODINGS if any(r["encoding"] == e for r in runs)]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for encoding in encodings:
        values = np.array([[r["eval"][str(n)]["loss"] for n in lengths]
                           for r in runs if r["encoding"] == encoding])
        ax.errorbar(lengths, values.mean(0), yerr=values.std(0), marker="o", capsize=3,
                    label=LABELS[encoding])
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel(f"evaluation length (trained at {block})")
    ax.set_ylabel("validation loss (nats / char)")
    ax.set_title("loss over whole windows against their length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss_vs_length.png", dpi=110)
    plt.close(fig)

    width = max(longest // 64, 1)
    for name, key, ylabel, title in (
            ("loss_by_position.png", "loss_by_position", "validation loss (nats / char)",
             "loss at each position of a window"),
            ("entropy_by_position.png", "entropy_by_position", "attention entropy (nats)",
             "attention entropy of each query position")):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        x = np.arange(0, longest, width) + (width - 1) / 2
        for encoding in encodings:
            values = np.array([_smooth(np.asarray(r["eval"][str(longest)][key]), width)
                               for r in runs if r["encoding"] == encoding])
            ax.plot(x, values.mean(0), label=LABELS[encoding])
        if key == "entropy_by_position":
            ax.plot(x, [math.log(i + 1) for i in x], "k:", label="uniform over the keys")
        ax.axvline(block, color="grey", linestyle="--", label=f"training context {block}")
        ax.set_xlabel(f"position in a window of {longest} (means over {width} positions)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if key == "loss_by_position":
            top = max(r["eval"][str(block)]["loss"] for r in runs) + 1.5
            ax.set_ylim(top=top)  # the learned table's loss can run far above; the table has it
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)


def run_extrapolation(out: str | Path, *, size: str = "small", seeds: int = 3,
                      only: list[str] | None = None, overrides: dict | None = None,
                      log=print, quiet: bool = True) -> dict:
    """Train and evaluate every (encoding, seed) not yet finished; write ``results.json``,
    ``results.md`` and the plots. A finished run is read back, a stopped one resumes."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    unknown = [name for name in only or [] if name not in ENCODINGS]
    if unknown:
        raise ValueError(f"unknown encoding(s) {unknown}; choose from {list(ENCODINGS)}")
    base, lengths, max_tokens = size_config(size, overrides)
    if base.tokenizer != "char":
        raise ValueError("the extrapolation experiment reports nats per character; use the "
                         f"char tokenizer, not {base.tokenizer!r}")
    out = Path(out)
    text = read_text(base.data)
    data = TokenData.from_text(text, build_tokenizer(base.tokenizer, text), base.block_size)
    runs = []
    for encoding in ENCODINGS:
        if only and encoding not in only:
            continue
        for seed in range(seeds):
            config = replace(base, seed=seed)
            stamp = {"train": config.to_dict(), "encoding": encoding, "lengths": list(lengths),
                     "eval_tokens": max_tokens,
                     "sinusoid_rms": SINUSOID_RMS if encoding == "sinusoidal" else None}
            run_dir = out / "runs" / encoding / f"seed{seed}"
            summary_file, stamp_file = run_dir / "extrapolation.json", run_dir / "stamp.json"
            saved = (json.loads(summary_file.read_text(encoding="utf-8"))
                     if summary_file.exists() else None)
            if saved is not None and saved["config"] == stamp:
                summary = saved
            else:
                # a checkpoint is resumed only if it was written for this very condition
                same = (stamp_file.exists()
                        and json.loads(stamp_file.read_text(encoding="utf-8")) == stamp)
                if not same:
                    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
                    run_dir.mkdir(parents=True, exist_ok=True)
                    stamp_file.write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
                summary = {"config": stamp, **train_and_evaluate(
                    config, encoding, lengths, max_tokens, run_dir, data, quiet)}
                summary_file.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            runs.append({"encoding": encoding, "seed": seed, **summary})
            log(f"{LABELS[encoding]}, seed {seed}: "
                + ", ".join(f"loss at {n} {summary['eval'][str(n)]['loss']:.4f}"
                            for n in lengths) + f" ({summary['seconds']} s)")
    result = {"experiment": "extrapolation", "size": size, "seeds": seeds,
              "base": base.to_dict(), "lengths": list(lengths),
              "seconds": round(sum(r["seconds"] for r in runs), 1),  # read-back runs too
              "table": extrapolation_table(runs, lengths, base.block_size), "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(extrapolation_markdown(result), encoding="utf-8")
    plot_extrapolation(result, out)
    return result
