"""How the failure-mode measurements read a text through a trained model: characters the
vocabulary holds as ids, the model's next-character logits at every position, and the few
numbers taken from them (probabilities, top-1 choice and correctness, the mean loss)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch


def encode_known(text: str, itos: list[str]) -> tuple[np.ndarray, Counter]:
    """The ids of the characters of ``text`` the vocabulary ``itos`` holds, and a count of the
    others, which are removed (the model then reads the text without them)."""
    stoi = {ch: i for i, ch in enumerate(itos)}
    skipped = Counter(ch for ch in text if ch not in stoi)
    ids = np.fromiter((stoi[ch] for ch in text if ch in stoi), dtype=np.int64)
    return ids, skipped


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


def softmax(logits: np.ndarray) -> np.ndarray:
    """logits: (N, V) -> probabilities (N, V), in float64."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def top1(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """probs: (N, V), targets: (N,) -> the top-1 probability and whether it was right."""
    return probs.max(axis=-1), probs.argmax(axis=-1) == targets


def mean_nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """The mean of -log softmax(logits / temperature)[target], in nats."""
    z = logits.astype(np.float64) / temperature
    top = z.max(axis=-1)
    log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=-1))
    return float(np.mean(log_norm - z[np.arange(len(targets)), targets]))

