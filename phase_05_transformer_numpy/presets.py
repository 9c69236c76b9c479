"""The training configuration and its named presets. This module imports no NumPy, so the
command line can read ``--threads`` and set the BLAS thread count before NumPy loads.

``shakespeare-char`` is nanoGPT's CPU recipe for ``config/train_shakespeare_char.py``
(``--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12
--n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``) with
the rest of that file and of nanoGPT's ``train.py`` defaults: lr 1e-3 to min_lr 1e-4 by a cosine
after 100 warmup steps, AdamW betas (0.9, 0.99), weight decay 0.1 on the matrices and embeddings
only, gradient clipping at 1.0, no biases (``bias = False`` in ``train.py``), exact GELU.

One thing differs from nanoGPT: the initialisation. nanoGPT draws every weight from N(0, 0.02^2),
GPT-2's constant for width 768; at width 128 that starts the blocks 4.4 times smaller than the
fan-in rule 1 / sqrt(n_embd), and after 2000 steps the validation loss is 1.906 (three seeds; 1.899
in nanoGPT's own loop). ``init="width"`` (``gpt.py::block_init_std``) gives 1.776 instead (three
seeds): see ``notes/06_training_run.md``, section 6.4. ``--init gpt2`` restores nanoGPT's recipe
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from phase_01_nn.config_options import check_config


@dataclass(frozen=True)
class TrainConfig:
    # the model (GPTConfig's fields; the vocabulary comes from the data)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = False
    pre_ln: bool = True
    tie_weights: bool = True
    positions: str = "learned"
    gelu: str = "none"
    init: str = "width"  # nanoGPT's is "gpt2": see the module docstring
    # the optimisation
    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    # evaluation, records, sampling
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10
    sample_chars: int = 500
    seed: int = 1337
    dataset: str = "tinyshakespeare"

    def __post_init__(self) -> None:
        check_config(self, non_negative=("weight_decay",))
        for name in ("batch_size", "max_iters", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_iters <= self.max_iters:
            raise ValueError(f"TrainConfig.warmup_iters must be in [0, max_iters = "
                             f"{self.max_iters}], got {self.warmup_iters}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        if self.grad_clip <= 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0, got {self.grad_clip}")


PRESETS = {
    "shakespeare-char": TrainConfig(),
    # A seconds-long run to try the command, the checkpoints and sampling.
    "tiny": TrainConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8,
                        max_iters=100, warmup_iters=10, eval_interval=50, eval_iters=5,
                        sample_chars=200),
}


def preset(name: str, **overrides) -> TrainConfig:
    """The named preset with ``overrides`` applied, or a clear error naming the presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)
