import numpy as np
import pytest
import torch
from hypothesis import given

from phase_00_math.strategies import seeds
from phase_06_torch_parity.coverage import missing_cases, numpy_ops
from phase_06_torch_parity.harness import ParityCase, run_case
from phase_06_torch_parity.optimizer_parity import (
    OPTIMIZERS,
    clipping_parity,
    optimizer_parity,
    schedule_parity,
)
from phase_06_torch_parity.registry import CASES


def test_every_numpy_op_has_a_parity_case():
    assert len(numpy_ops()) >= 13
    assert missing_cases(CASES) == []


def test_coverage_notices_an_op_without_a_case():
    assert "phase_01_nn.linear.linear_forward" in missing_cases(
        [c for c in CASES if c.name != "linear"])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@given(seed=seeds())
def test_float64_parity(case, seed):
    result = run_case(case, seed, np.float64)
    assert result.passed, (result.forward_error, result.grad_errors)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@given(seed=seeds())
def test_float32_parity(case, seed):
    result = run_case(case, seed, np.float32)
    assert result.passed, (result.forward_error, result.grad_errors)


def test_harness_catches_a_wrong_backward():
    linear = next(c for c in CASES if c.name == "linear")

    def transposed_backward(dout, cache):
        dx, dw, db = linear.backward(dout, cache)
        return dx, dw[::-1], db  # rows of dW in the wrong order

    broken = ParityCase("broken linear", linear.forward, transposed_backward,
                        linear.torch_reference,
                        lambda rng: ((rng.standard_normal((3, 4)), rng.standard_normal((4, 2)),
                                      rng.standard_normal(2)), {}), arg_names=("x", "w", "b"))
    result = run_case(broken, 0)
    assert not result.passed
    assert result.grad_errors["w"] > 0.1 and result.grad_errors["x"] < 1e-12


def test_harness_fails_a_nan_output_even_with_right_gradients():
    # what a real NaN in a matmul would give, now that the suite ignores matmul's "invalid
    # value" flag (pyproject.toml): the values themselves must fail the case
    linear = next(c for c in CASES if c.name == "linear")

    def nan_forward(x, w, b):
        out, cache = linear.forward(x, w, b)
        out = out.copy()
        out[0, 0] = np.nan
        return out, cache

    broken = ParityCase("linear with a NaN output", nan_forward, linear.backward,
                        linear.torch_reference, linear.make_inputs, arg_names=("x", "w", "b"))
    result = run_case(broken, 0)
    assert np.isnan(result.forward_error) and not result.passed


def test_harness_catches_a_wrong_forward():
    sigmoid = next(c for c in CASES if c.name == "sigmoid")
    broken = ParityCase("tanh as sigmoid", sigmoid.forward, sigmoid.backward, torch.tanh,
                        sigmoid.make_inputs)
    assert not run_case(broken, 0).passed


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizers_match_torch_for_20_steps(name):
    assert optimizer_parity(name, steps=20) <= 1e-12
    assert optimizer_parity(name, steps=20, scheduled=False) <= 1e-12


def test_schedule_matches_cosine_annealing():
    assert schedule_parity() <= 1e-12


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clipping_matches_torch(max_norm):
    assert clipping_parity(max_norm) <= 1e-12
