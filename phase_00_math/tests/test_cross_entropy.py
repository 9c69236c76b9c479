import math

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.cross_entropy import cross_entropy_backward, cross_entropy_forward
from phase_00_math.gradcheck import check_gradients
from phase_00_math.softmax import log_softmax
from phase_00_math.strategies import seeds, shapes, sizes


def test_uniform_prediction_costs_log_k():
    log_probs = np.full((4, 27), -math.log(27))
    loss, _ = cross_entropy_forward(log_probs, targets=np.array([0, 5, 26, 3]))
    assert math.isclose(float(loss), math.log(27), rel_tol=1e-15)


def test_matches_hand_computed_value():
    log_probs = log_softmax(np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]))
    loss, _ = cross_entropy_forward(log_probs, targets=np.array([0, 2]))
    expected = -(log_probs[0, 0] + log_probs[1, 2]) / 2
    assert math.isclose(float(loss), expected, rel_tol=1e-15)


@given(shape=shapes(min_dims=2, max_dims=3), seed=seeds())
def test_gradient(shape, seed):
    rng = np.random.default_rng(seed)
    log_probs = log_softmax(rng.standard_normal(shape))
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    check_gradients(cross_entropy_forward, cross_entropy_backward, log_probs, targets=targets)


@given(k=sizes(2, 6))
def test_rejects_out_of_range_targets(k):
    with pytest.raises(ValueError, match=f"target {k} is outside the {k} classes"):
        cross_entropy_forward(np.zeros((2, k)), targets=np.array([0, k]))


def test_rejects_float_targets_and_wrong_shape():
    with pytest.raises(TypeError, match="integer class ids"):
        cross_entropy_forward(np.zeros((2, 3)), targets=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(2,\)"):
        cross_entropy_forward(np.zeros((2, 3)), targets=np.array([0, 1, 2]))
