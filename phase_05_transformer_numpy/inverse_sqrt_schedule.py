"""The learning-rate schedule of Vaswani et al. (2017, section 5.3):

    lr(step) = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)     (step from 1)

a linear warmup to a peak of factor / sqrt(d_model * warmup) at step = warmup, then decay as
1 / sqrt(step). The Post-LN Transformer needs the warmup: Xiong et al. (2020) show its gradients
near the output are large at initialisation, and a full-size first step diverges.
Notes: ``phase_05_transformer_numpy/notes/04_encoder_decoder.md``.
"""

from __future__ import annotations

import math


def inverse_sqrt_lr(step: int, *, d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """The learning rate at ``step`` (0-based, so the paper's step number is ``step + 1``)."""
    if d_model < 1 or warmup_steps < 1:
        raise ValueError(f"need d_model >= 1 and warmup_steps >= 1, got {d_model}, "
                         f"{warmup_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    n = step + 1
    return factor / math.sqrt(d_model) * min(1.0 / math.sqrt(n), n * warmup_steps**-1.5)
