"""Draw a trained ladder model's attention: one panel per head, the prompt's characters on both
axes (row = the query, the character predicting the next one; column = the key it reads).
Notes: ``phase_04_attention/notes/05_reading_a_heatmap.md``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from phase_04_attention.attention import attention_entropy  # noqa: E402
from phase_04_attention.ladder import LadderModel  # noqa: E402


def _label(ch: str) -> str:
    return {"\n": "\\n", " ": "␣"}.get(ch, ch)


def prompt_attention(model: LadderModel, ids: np.ndarray, layer: int) -> np.ndarray:
    """(H, T, T) attention weights of block ``layer`` for one prompt of ids (T,)."""
    if ids.ndim != 1 or not 1 <= len(ids) <= model.config.block_size:
        raise ValueError(f"the prompt must have 1 to block_size = {model.config.block_size} "
                         f"characters, got {len(ids)}")
    if not 0 <= layer < model.config.n_layer:
        raise ValueError(f"layer must be in [0, {model.config.n_layer}), got {layer}")
    model.forward(ids[None])
    return model.attention_weights()[layer][0]


def draw_heatmap(weights: np.ndarray, chars: str, path: Path, title: str) -> Path:
    """weights (H, T, T) -> a PNG with one panel per head, titled with the head's entropy."""
    heads = len(weights)
    entropy = attention_entropy(weights[None])
    columns = min(heads, 4)
    rows = -(-heads // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.6 * rows), squeeze=False)
    labels = [_label(ch) for ch in chars]
    for head, ax in enumerate(axes.flat):
        if head >= heads:
            ax.axis("off")
            continue
        ax.imshow(weights[head], cmap="magma", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(chars)), labels, fontsize=7, family="monospace")
        ax.set_yticks(range(len(chars)), labels, fontsize=7, family="monospace")
        ax.set_title(f"head {head}  (entropy {entropy[head]:.2f} nats)", fontsize=9)
        ax.set_xlabel("key (attended to)", fontsize=8)
        if head % columns == 0:
            ax.set_ylabel("query (predicting the next)", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
