"""HellaSwag (Zellers et al. 2019): pick the right ending of a sentence among four.

The official validation file, ``hellaswag_val.jsonl`` (10,042 examples, from
https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl), has one
JSON object per line with ``ctx`` (the start), ``endings`` (four strings) and ``label`` (the
index of the right one). A language model answers without training for the task: each ending
is appended to the context (after a space, as GPT-2 tokenizes words), and the ending whose
tokens have the lowest mean loss given everything before them is the model's choice. The mean,
not the sum, so that a long ending is not penalised for its length (nanoGPT's and llm.c's
"acc_norm"). GPT-2 Small scores about 0.29 this way; chance is 0.25.
Notes: ``phase_08_train_124m/notes/02_the_124m_recipe.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

HELLASWAG_FILE = "hellaswag/hellaswag_val.jsonl"
HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"


def find_hellaswag(path: str = "") -> Path | None:
    """``path`` if given (it must exist), else ``$TFS_DATA_DIR/hellaswag/hellaswag_val.jsonl``
    if present, else None."""
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no HellaSwag file at {path}; download {HELLASWAG_URL}")
        return Path(path)
    data_dir = os.environ.get("TFS_DATA_DIR")
    candidate = Path(data_dir) / HELLASWAG_FILE if data_dir else None
    return candidate if candidate is not None and candidate.is_file() else None


def missing_message() -> str:
    where = (f"{os.environ['TFS_DATA_DIR']}/{HELLASWAG_FILE}" if os.environ.get("TFS_DATA_DIR")
             else f"$TFS_DATA_DIR/{HELLASWAG_FILE}")
    return (f"HellaSwag is skipped: no file at {where}. To score it, download {HELLASWAG_URL} "
            f"there or pass --hellaswag PATH")


def read_examples(path: str | os.PathLike) -> list[dict]:
    """The examples of a HellaSwag JSONL file as {"context", "endings", "label"}."""
    examples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                context, endings, label = row["ctx"], row["endings"], int(row["label"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}:{number} is not a HellaSwag example (a JSON object "
                                 f"with ctx, endings and label): {error!r}") from None
            if len(endings) != 4 or not 0 <= label < 4:
                raise ValueError(f"{path}:{number} needs 4 endings and a label in 0..3, got "
                                 f"{len(endings)} endings and label {label}")
            examples.append({"context": context, "endings": endings, "label": label})
    if not examples:
        raise ValueError(f"{path} holds no HellaSwag examples")
    return examples


def render(example: dict, encode) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens: (4, L) int64, context + " " + ending i, right-padded with 0; mask: (4, L), 1 on
    the ending's tokens (the ones scored)."""
    context = encode(example["context"])
    rows = [(context, encode(" " + ending)) for ending in example["endings"]]
    length = max(len(c) + len(e) for c, e in rows)
    tokens = torch.zeros(4, length, dtype=torch.int64)
    mask = torch.zeros(4, length, dtype=torch.int64)
    for i, (c, e) in enumerate(rows):
        tokens[i, :len(c) + len(e)] = torch.tensor(c + e)
        mask[i, len(c):len(c) + len(e)] = 1
    return tokens, mask


@torch.no_grad()
def ending_losses(model, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(4,) the mean loss of each ending's tokens, each predicted from all tokens before it.
    The last ``block_size`` tokens are kept if a row is longer (the context is cut on the
    left)."""
    block = model.config.block_size
    tokens, mask = tokens[:, -block - 1:], mask[:, -block - 1:]
    logits, _ = model(tokens[:, :-1])
    losses = F.cross_entropy(logits.float().transpose(1, 2), tokens[:, 1:], reduction="none")
    scored = mask[:, 1:].to(losses.dtype)
    return (losses * scored).sum(dim=1) / scored.sum(dim=1)


def evaluate(model, examples: list[dict], encode, device, *, rank: int = 0,
             world_size: int = 1) -> tuple[int, int]:
    """(correct, scored) over this process's share of ``examples`` (every world_size-th one
    from ``rank``); the caller sums them over processes."""
    was_training = model.training
    model.eval()
    correct = scored = 0
    for example in examples[rank::world_size]:
        tokens, mask = render(example, encode)
        losses = ending_losses(model, tokens.to(device), mask.to(device))
        correct += int(losses.argmin().item() == example["label"])
        scored += 1
    model.train(was_training)
    return correct, scored
