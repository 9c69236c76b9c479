import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_09_modern.ops.dpo import dpo_implicit_rewards, dpo_loss_backward, dpo_loss_forward


def _log_probs(rng, b):
    return -5.0 - 10.0 * rng.random(b)


@given(b=sizes(1, 6), beta=st.sampled_from([0.05, 0.1, 1.0]), seed=seeds())
def test_dpo_gradients(b, beta, seed):
    rng = np.random.default_rng(seed)
    check_gradients(dpo_loss_forward, dpo_loss_backward, *(_log_probs(rng, b) for _ in range(4)),
                    beta=beta, names=["pc", "pr", "rc", "rr"])


@given(b=sizes(1, 8), beta=st.floats(0.01, 10.0), seed=seeds())
def test_loss_is_ln_2_when_policy_equals_reference(b, beta, seed):
    rng = np.random.default_rng(seed)
    chosen, rejected = _log_probs(rng, b), _log_probs(rng, b)
    loss, cache = dpo_loss_forward(chosen, rejected, chosen, rejected, beta=beta)
    assert abs(float(loss) - math.log(2.0)) < 1e-15
    d_chosen, d_rejected, _, _ = dpo_loss_backward(1.0, cache)
    # and the first step raises the chosen and lowers the rejected, by beta / (2 B) each
    np.testing.assert_allclose(d_chosen, -beta / (2 * b), rtol=1e-14)
    np.testing.assert_allclose(d_rejected, beta / (2 * b), rtol=1e-14)


def test_loss_falls_as_the_policy_prefers_the_chosen_answer():
    chosen, rejected = np.array([-10.0]), np.array([-10.0])
    losses = [float(dpo_loss_forward(chosen + m, rejected - m, chosen, rejected, beta=0.5)[0])
              for m in (0.0, 1.0, 5.0, 20.0)]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 1e-8
    np.testing.assert_allclose(dpo_implicit_rewards(chosen + 1.0, chosen, beta=0.5), [0.5])


def test_float32_in_float32_out_and_shapes_checked():
    x = np.full(3, -4.0, dtype=np.float32)
    loss, cache = dpo_loss_forward(x, x, x, x)
    assert loss.dtype == np.float32 and all(g.dtype == np.float32
                                            for g in dpo_loss_backward(np.float32(1.0), cache))
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss_forward(x, x[:2], x, x)
