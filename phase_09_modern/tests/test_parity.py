import numpy as np
import pytest
from hypothesis import given, settings

from phase_00_math.strategies import seeds
from phase_06_torch_parity.harness import ParityCase, run_case
from phase_09_modern.ops.parity import CASES, missing_cases, numpy_modules, numpy_ops

SEEDS_PER_CASE = 8


def test_every_numpy_op_of_phase_9_has_a_parity_case():
    assert "phase_09_modern.ops.rope" in numpy_modules()
    assert "phase_09_modern.ops.parity" not in numpy_modules()
    assert missing_cases() == []


def test_coverage_notices_an_op_without_a_case():
    assert "phase_09_modern.ops.rope.rope_forward" in numpy_ops()
    assert "phase_09_modern.ops.rope.rope_forward" in missing_cases(
        [c for c in CASES if not c.name.startswith("rope")])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@settings(max_examples=SEEDS_PER_CASE)
@given(seed=seeds())
def test_float64_parity(case, seed):
    result = run_case(case, seed, np.float64)
    assert result.passed, (result.forward_error, result.grad_errors)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@settings(max_examples=SEEDS_PER_CASE)
@given(seed=seeds())
def test_float32_parity(case, seed):
    result = run_case(case, seed, np.float32)
    assert result.passed, (result.forward_error, result.grad_errors)


def test_a_wrong_rope_backward_fails_parity():
    rope = next(c for c in CASES if c.name == "rope interleaved")

    def unrotated_backward(dout, cache):
        return (dout,)  # forgets to rotate back

    broken = ParityCase("broken rope", rope.forward, unrotated_backward, rope.torch_reference,
                        rope.make_inputs)
    assert not run_case(broken, 3).passed
