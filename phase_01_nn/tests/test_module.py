import numpy as np
import pytest

from phase_01_nn.activations import GELU, Sigmoid, Tanh
from phase_01_nn.batchnorm import BatchNorm
from phase_01_nn.linear import Linear
from phase_01_nn.module import Module, Sequential, check_module_gradients


def _mlp(rng):
    return Sequential(
        # no bias before batch norm: the mean subtraction cancels it, so its gradient is 0
        Linear(3, 5, rng=rng, bias=False, dtype=np.float64), BatchNorm(5, dtype=np.float64), Tanh(),
        Linear(5, 4, rng=rng, dtype=np.float64), GELU("tanh"),
        Linear(4, 2, rng=rng, dtype=np.float64), Sigmoid(),
    )


def test_whole_mlp_gradient_check():
    rng = np.random.default_rng(0)
    errors = check_module_gradients(_mlp(rng), rng.standard_normal((6, 3)))
    assert set(errors) == {"input", "0.w", "1.gamma", "1.beta", "3.w", "3.b", "5.w", "5.b"}


def test_check_module_gradients_catches_a_wrong_layer():
    class BrokenTanh(Tanh):
        def backward(self, dout):
            return dout  # forgets the derivative

    rng = np.random.default_rng(1)
    model = Sequential(Linear(3, 4, rng=rng, dtype=np.float64), BrokenTanh(),
                       Linear(4, 2, rng=rng, dtype=np.float64))
    with pytest.raises(AssertionError, match="0.w: relative error"):
        check_module_gradients(model, rng.standard_normal((5, 3)))


def test_gradient_check_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        check_module_gradients(Linear(2, 2, rng=np.random.default_rng(0)), np.ones((1, 2)))


def test_parameters_are_the_arrays_themselves():
    model = _mlp(np.random.default_rng(0))
    params = model.parameters()
    params["0.w"][0, 0] = 123.0
    assert model[0].params["w"][0, 0] == 123.0
    assert params.keys() == model.gradients().keys()
    assert model.num_parameters() == 3 * 5 + 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2


def test_zero_grad_makes_backward_idempotent():
    rng = np.random.default_rng(2)
    model = _mlp(rng)
    x, dout = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    model.forward(x)
    model.zero_grad()
    model.backward(dout)
    first = {k: v.copy() for k, v in model.gradients().items()}
    model.backward(dout)
    for name, grad in model.gradients().items():
        np.testing.assert_allclose(grad, 2 * first[name], err_msg=name)
    model.zero_grad()
    model.backward(dout)
    for name, grad in model.gradients().items():
        np.testing.assert_array_equal(grad, first[name], err_msg=name)


def test_shared_weight_accumulates_both_uses():
    rng = np.random.default_rng(3)
    first = Linear(3, 3, rng=rng, bias=False, dtype=np.float64)
    second = Linear(3, 3, rng=rng, bias=False, dtype=np.float64)
    second.params["w"] = first.params["w"]  # tie the weights: one array, one gradient
    second.grads["w"] = first.grads["w"]
    model = Sequential(first, second)
    x = rng.standard_normal((4, 3))
    model.forward(x)
    model.zero_grad()
    model.backward(np.ones((4, 3)))
    w = first.params["w"]
    h = x @ w
    expected = x.T @ (np.ones((4, 3)) @ w.T) + h.T @ np.ones((4, 3))
    np.testing.assert_allclose(first.grads["w"], expected, rtol=1e-12)


def test_state_dict_round_trip_and_mismatch_errors():
    rng = np.random.default_rng(4)
    a, b = _mlp(rng), _mlp(rng)
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((6, 3))
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    state = a.state_dict()
    assert "1.running_mean" in state
    del state["0.w"]
    with pytest.raises(KeyError, match=r"missing \['0.w'\]"):
        b.load_state_dict(state)
    state = a.state_dict()
    state["3.b"] = np.zeros(7)
    with pytest.raises(ValueError, match=r"'3.b' has shape \(4,\) in the model but \(7,\)"):
        b.load_state_dict(state)


def test_train_and_eval_reach_every_child():
    model = _mlp(np.random.default_rng(5))
    model.eval()
    assert all(not m.training for _, m in model.named_modules())
    model.train()
    assert all(m.training for _, m in model.named_modules())


def test_base_module_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        Module().forward(np.zeros(1))
