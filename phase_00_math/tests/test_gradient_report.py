"""The gradient checker's failure messages name the mistake when it leaves a clear mark."""

import numpy as np
import pytest

from phase_00_math.gradcheck import check_gradients
from phase_00_math.gradient_report import (
    constant_ratio,
    describe_pattern,
    describe_ratio,
    explain_shape,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(("ratio", "words"), [
    (0.5, "0.5x the true one: a missing factor of 2?"),
    (2.0, "2x the true one: a factor of 2 too many?"),
    (-1.0, "-1x the true one: the sign is flipped"),
    (0.0, "is it computed at all?"),
    (-0.5, "-0.5x the true one: a missing factor of 2 and the sign is flipped?"),
    (1 / 3, "0.333x the true one: a missing factor of 3?"),
    (0.1234, "0.1234x the true one everywhere: one scale factor is wrong"),
])
def test_a_constant_ratio_is_named(ratio, words):
    numeric = RNG.standard_normal((3, 4))
    assert constant_ratio(ratio * numeric, numeric) == pytest.approx(ratio)
    assert words in describe_ratio(ratio)


def test_a_ratio_that_varies_is_not_called_constant():
    numeric = RNG.standard_normal((3, 4))
    assert constant_ratio(numeric + 0.1, numeric) is None
    analytic = numeric.copy()
    analytic[0, 0] = 0.0  # one entry dropped: not a scale
    assert constant_ratio(analytic, numeric) is None


def test_a_transpose_and_a_misplaced_mask_are_named():
    numeric = RNG.standard_normal((4, 4))
    assert "transposed" in describe_pattern(numeric.T, numeric)
    lower = np.tril(numeric)
    assert "nonzero where the true gradient is 0" in describe_pattern(numeric, lower)
    assert "0 where the true gradient is not" in describe_pattern(np.tril(numeric, -1), lower)


def test_a_wrong_shape_says_which_way():
    assert "(yours is transposed)" in explain_shape("op", "w", (3, 2), (2, 3))
    assert "sum over the broadcast axes" in explain_shape("op", "b", (4, 3), (3,))


def _mask_forward(x):
    return np.triu(x), None


def _mask_backward_off_by_one(dout, cache):
    return (np.triu(dout, -1),)  # planted bug: lets through one diagonal below


def test_the_checker_reports_op_argument_hint_and_values_side_by_side():
    x = RNG.standard_normal((4, 4))
    with pytest.raises(AssertionError) as failure:
        check_gradients(_mask_forward, _mask_backward_off_by_one, x, names=["x"])
    message = str(failure.value)
    assert message.startswith("gradient check of phase_00_math.tests.test_gradient_report."
                              "_mask_backward_off_by_one failed (tol 1e-07) for x: relative error")
    assert "_mask_backward_off_by_one, the gradient of 'x':" in message
    assert "3 of 16 entries are nonzero where the true gradient is 0" in message
    assert "yours         numeric" in message
    assert len(message.splitlines()) <= 9
