"""Learning-rate schedule: linear warmup, then cosine decay to a floor (as in GPT-2 and nanoGPT).

Warmup keeps the first, badly-scaled Adam steps small while the second-moment estimates settle;
the cosine then anneals smoothly to ``min_lr``.
"""

import math


def warmup_cosine_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
                     total_steps: int) -> float:
    """The learning rate at ``step`` (0-based).

    - ``step < warmup_steps``: ``max_lr * (step + 1) / warmup_steps``;
    - up to ``total_steps``: ``min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2``,
      progress running from 0 to 1 after the warmup;
    - beyond: ``min_lr``.
    """
    if warmup_steps < 0 or total_steps <= 0 or warmup_steps > total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps > 0, "
            f"got warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    if not 0 <= min_lr <= max_lr:
        raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
