import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.softmax import softmax
from phase_00_math.strategies import seeds, sizes
from phase_09_modern.ops.moe import (
    load_balancing_loss_backward,
    load_balancing_loss_forward,
    moe_backward,
    moe_dense_reference,
    moe_forward,
    top_k_routing,
)


def _layer(rng, c, f, e):
    return (rng.standard_normal((c, e)), rng.standard_normal((e, c, f)),
            rng.standard_normal((e, c, f)), rng.standard_normal((e, f, c)))


@given(n=sizes(1, 5), e=sizes(2, 4), seed=seeds())
def test_top_k_weights_are_the_renormalised_softmax(n, e, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, e))
    k = int(rng.integers(1, e + 1))
    indices, weights = top_k_routing(logits, k)
    p = softmax(logits)
    chosen = np.take_along_axis(p, indices, axis=-1)
    np.testing.assert_allclose(weights, chosen / chosen.sum(-1, keepdims=True), rtol=1e-14)
    assert np.all(np.diff(chosen, axis=-1) <= 0)  # best first
    assert np.all(chosen.min(-1) >= np.sort(p, axis=-1)[:, e - k])


@given(lead=sizes(1, 3), n=sizes(1, 6), c=sizes(1, 4), f=sizes(1, 4), e=sizes(1, 5),
       seed=seeds())
def test_loop_dispatch_equals_dense_compute_then_mask(lead, n, c, f, e, seed):
    rng = np.random.default_rng(seed)
    x, layer = rng.standard_normal((lead, n, c)), _layer(rng, c, f, e)
    k = int(rng.integers(1, e + 1))
    y, _ = moe_forward(x, *layer, k=k)
    np.testing.assert_allclose(y, moe_dense_reference(x, *layer, k=k), rtol=1e-12, atol=1e-12)


@given(n=sizes(1, 4), c=sizes(1, 3), f=sizes(1, 3), e=sizes(2, 4), seed=seeds())
def test_moe_gradients_with_routing_held_constant(n, c, f, e, seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, e + 1))
    # central differences move the logits by ~1e-6; the routing must not flip under them
    x, layer = rng.standard_normal((n, c)), _layer(rng, c, f, e)
    logits = np.sort(x @ layer[0], axis=-1)
    if np.min(np.diff(logits, axis=-1)) < 1e-3:
        return
    check_gradients(moe_forward, moe_backward, x, *layer, k=k,
                    names=["x", "w_gate", "w1", "w3", "w2"])


def test_top_1_gives_the_router_no_gradient():
    """With k = 1 the renormalised gate is exactly 1: the router learns nothing through the
    output (which is why Switch multiplies by the raw probability instead, and why it needs
    the balancing loss)."""
    rng = np.random.default_rng(0)
    x, layer = rng.standard_normal((5, 3)), _layer(rng, 3, 2, 4)
    y, cache = moe_forward(x, *layer, k=1)
    _, dw_gate, *_ = moe_backward(rng.standard_normal(y.shape), cache)
    np.testing.assert_array_equal(dw_gate, 0.0)


def test_an_unused_expert_gets_zero_gradient():
    rng = np.random.default_rng(1)
    x, (w_gate, w1, w3, w2) = np.abs(rng.standard_normal((6, 3))), _layer(rng, 3, 2, 3)
    w_gate[:, 2] = -50.0  # positive inputs: expert 2 scores far below the others
    y, cache = moe_forward(x, w_gate, w1, w3, w2, k=2)
    _, _, dw1, dw3, dw2 = moe_backward(np.ones_like(y), cache)
    assert np.all(cache[5] != 2)
    np.testing.assert_array_equal(dw1[2], 0.0)
    assert np.any(dw1[0] != 0.0)


@given(n_per_expert=sizes(1, 4), e=sizes(1, 8), k=sizes(1, 8), seed=seeds())
def test_balancing_loss_is_one_when_perfectly_balanced(n_per_expert, e, k, seed):
    """Uniform router probabilities and an equal share of assignments per expert: loss 1."""
    k = min(k, e)
    rng = np.random.default_rng(seed)
    n = n_per_expert * e
    expert_index = np.stack([(np.arange(k) + i) % e for i in range(n)])
    assert np.all(np.bincount(expert_index.ravel(), minlength=e) == n_per_expert * k)
    loss, _ = load_balancing_loss_forward(np.zeros((n, e)), expert_index=expert_index)
    assert abs(float(loss) - 1.0) < 1e-15
    # uniform probabilities alone give 1 too, whatever the counts, and so do uniform counts
    skewed = np.zeros((n, k), dtype=int) + np.arange(k)
    loss, _ = load_balancing_loss_forward(np.full((n, e), 0.3), expert_index=skewed)
    assert abs(float(loss) - 1.0) < 1e-14
    loss, _ = load_balancing_loss_forward(rng.standard_normal((n, e)), expert_index=expert_index)
    assert abs(float(loss) - 1.0) < 1e-14


def test_balancing_loss_approaches_e_when_collapsed():
    e = 8
    logits = np.zeros((32, e))
    logits[:, 0] = 20.0
    loss, _ = load_balancing_loss_forward(logits, expert_index=np.zeros((32, 1), dtype=int))
    assert e - 1e-6 < float(loss) <= e


@given(n=sizes(1, 6), e=sizes(2, 5), seed=seeds())
def test_balancing_loss_gradients(n, e, seed):
    rng = np.random.default_rng(seed)
    # expert E-1 is never chosen, so the counts are not uniform (uniform counts make the
    # loss constant and its gradient exactly 0, which a relative error cannot compare)
    expert_index = rng.integers(0, e - 1, size=(n, 1))
    check_gradients(load_balancing_loss_forward, load_balancing_loss_backward,
                    rng.standard_normal((n, e)), expert_index=expert_index, names=["logits"])


def test_bad_k_is_named():
    with pytest.raises(ValueError, match="k must be"):
        top_k_routing(np.zeros((2, 3)), 4)
