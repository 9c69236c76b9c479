"""When a whole model fails its gradient check (or stops learning), which op is to blame?

A model-level failure says only that some parameter's gradient is off. Phase 5's models are
built from ops that each have their own check, so the first question is always whether one of
them is broken. ``first_failing_op`` re-runs phase 0's gradient check on each op the GPT uses, in
the order its forward meets them, then on the encoder-decoder's own two (cross-attention, the
label-smoothed loss), on small float64 inputs, and names the first that fails with the phase
whose tests cover it; when every op passes, the fault is in how the model combines them.
See ``phase_05_transformer_numpy/notes/03_the_gpt.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from phase_00_math.gradcheck import check_gradients
from phase_01_nn import activations, dropout, embedding, linear, losses
from phase_04_attention import attention, layer_norm
from phase_05_transformer_numpy import cross_attention, feed_forward, label_smoothing, positional

B, T, C, H, V = 2, 3, 4, 2, 5


def _ops(rng: np.random.Generator) -> list[tuple[str, object, str, tuple, dict]]:
    """(op, module, phase, arrays, options) in the order the GPT's forward meets them. The
    functions are looked up on their modules when checked, so a patched one is the one tested."""
    x = rng.standard_normal((B, T, C))
    return [
        ("embedding", embedding, "phase_01_nn", (rng.standard_normal((V, C)),),
         {"ids": rng.integers(0, V, (B, T))}),
        ("positional_encoding", positional, "phase_05_transformer_numpy",
         (x, rng.standard_normal((T, C))), {}),
        ("dropout", dropout, "phase_01_nn", (x,),
         {"mask": rng.random((B, T, C)) < 0.7, "p": 0.3}),
        ("layer_norm", layer_norm, "phase_04_attention",
         (x, 1 + 0.3 * rng.standard_normal(C), rng.standard_normal(C)), {}),
        ("linear", linear, "phase_01_nn",
         (x, rng.standard_normal((C, 3 * C)), rng.standard_normal(3 * C)), {}),
        ("scaled_dot_product_attention", attention, "phase_04_attention",
         tuple(rng.standard_normal((B, H, T, C // H)) for _ in range(3)), {"causal": True}),
        ("multi_head_self_attention", attention, "phase_04_attention",
         (x, rng.standard_normal((C, 3 * C)), rng.standard_normal(3 * C),
          rng.standard_normal((C, C)), rng.standard_normal(C)), {"n_head": H, "causal": True}),
        ("gelu", activations, "phase_01_nn", (x,), {}),
        ("feed_forward", feed_forward, "phase_05_transformer_numpy",
         (x, rng.standard_normal((C, 4 * C)), rng.standard_normal(4 * C),
          rng.standard_normal((4 * C, C)), rng.standard_normal(C)), {}),
        ("softmax_cross_entropy", losses, "phase_01_nn", (rng.standard_normal((B, T, V)),),
         {"targets": rng.integers(0, V, (B, T))}),
        ("cross_attention", cross_attention, "phase_05_transformer_numpy",
         (x, rng.standard_normal((B, T + 1, C)), rng.standard_normal((C, C)),
          rng.standard_normal(C), rng.standard_normal((C, 2 * C)), rng.standard_normal(2 * C),
          rng.standard_normal((C, C)), rng.standard_normal(C)), {"n_head": H}),
        ("label_smoothing_cross_entropy", label_smoothing, "phase_05_transformer_numpy",
         (rng.standard_normal((B, T, V)),), {"targets": rng.integers(0, V, (B, T)),
                                              "smoothing": 0.1}),
    ]


def first_failing_op(seed: int = 0) -> str | None:
    """"op_backward (phase): the checker's message" for the first op of the GPT that fails its
    own gradient check, or None when all of them pass."""
    for name, module, phase, arrays, options in _ops(np.random.default_rng(seed)):
        forward: Callable = getattr(module, f"{name}_forward")
        backward: Callable = getattr(module, f"{name}_backward")
        try:
            check_gradients(forward, backward, *arrays, seed=seed, **options)
        except AssertionError as failure:
            return (f"the first op that fails its own check is {name}_backward: run "
                    f"`pytest {phase}` for its tests.\n{failure}")
    return None


def explain_model_failure(what: str) -> str:
    """``what`` failed in a whole-model check: add the op to blame, or say that none is."""
    culprit = first_failing_op()
    if culprit:
        return f"{what}\n{culprit}"
    return (f"{what}\nEvery op the model uses passes its own gradient check, so look at how "
            "the model combines them (gpt.py, block.py, encoder_decoder.py): the residual sums, "
            "the tied embedding and head, the reshapes.")
