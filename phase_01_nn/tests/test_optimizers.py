import math

import numpy as np
import pytest

from phase_01_nn import optimizers
from phase_01_nn.clipping import clip_grad_norm, global_norm
from phase_01_nn.optimizers import SGD, Adam, AdamW
from phase_01_nn.schedule import warmup_cosine_lr


def _params():
    return {"w": np.array([1.0, -2.0]), "b": np.array([0.5])}


def _grads():
    return {"w": np.array([0.1, 0.2]), "b": np.array([-0.3])}


def test_sgd_plain_step():
    params = _params()
    SGD(params, lr=0.1).step(_grads())
    np.testing.assert_allclose(params["w"], [0.99, -2.02])


def test_sgd_momentum_buffer():
    params = _params()
    opt = SGD(params, lr=0.1, momentum=0.9)
    opt.step(_grads())
    opt.step(_grads())
    # buf1 = g, buf2 = 0.9 g + g = 1.9 g; total step 0.1 * 2.9 g
    np.testing.assert_allclose(params["w"], [1.0 - 0.029, -2.0 - 0.058])


def test_adam_first_step_is_lr_times_sign():
    params = _params()
    Adam(params, lr=0.01).step(_grads())
    np.testing.assert_allclose(params["w"], [1.0 - 0.01, -2.0 - 0.01], rtol=1e-6)
    np.testing.assert_allclose(params["b"], [0.51], rtol=1e-6)


def test_adam_two_steps_by_hand():
    p = {"x": np.array([1.0])}
    opt = Adam(p, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    for g in (0.5, -1.0):
        opt.step({"x": np.array([g])})
    step1 = 0.1  # the first step is lr * sign(g), to within eps
    m = 0.9 * (0.1 * 0.5) + 0.1 * -1.0
    v = 0.999 * (0.001 * 0.25) + 0.001 * 1.0
    step2 = 0.1 * (m / (1 - 0.9**2)) / (math.sqrt(v / (1 - 0.999**2)) + 1e-8)
    assert math.isclose(p["x"][0], 1.0 - step1 - step2, rel_tol=1e-6)


def test_adamw_decay_is_decoupled_from_the_moments():
    zero = {"w": np.zeros(2), "b": np.zeros(1)}
    params = _params()
    AdamW(params, lr=0.1, weight_decay=0.5).step(zero)
    np.testing.assert_allclose(params["w"], [0.95, -1.9])  # shrunk by lr * wd, no Adam step
    l2 = _params()
    Adam(l2, lr=0.1, weight_decay=0.5).step(zero)
    np.testing.assert_allclose(l2["w"], [0.9, -1.9])  # L2 goes through Adam: a full lr step


def test_no_decay_parameters_are_left_alone():
    params = _params()
    AdamW(params, lr=0.1, weight_decay=0.5, no_decay=["b"]).step(
        {"w": np.zeros(2), "b": np.zeros(1)})
    np.testing.assert_array_equal(params["b"], [0.5])
    with pytest.raises(KeyError, match="unknown parameters"):
        AdamW(_params(), no_decay=["gamma"])


def test_optimizers_minimise_a_quadratic():
    target = np.array([3.0, -1.0, 0.5])
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p, lr=0.1),
                 lambda p: AdamW(p, lr=0.1, weight_decay=0.0)):
        params = {"x": np.zeros(3)}
        opt = make(params)
        for _ in range(500):
            opt.step({"x": 2 * (params["x"] - target)})
        np.testing.assert_allclose(params["x"], target, atol=1e-3)


def test_state_dict_resumes_exactly():
    grads = [{"w": np.array([0.1 * k, -0.2]), "b": np.array([0.3 / k])} for k in range(1, 7)]
    straight = _params()
    opt = AdamW(straight, lr=0.05)
    for g in grads:
        opt.step(g)
    resumed = _params()
    first = AdamW(resumed, lr=0.05)
    for g in grads[:3]:
        first.step(g)
    second = AdamW(resumed, lr=0.05)
    second.load_state_dict(first.state_dict())
    for g in grads[3:]:
        second.step(g)
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name])


def test_missing_gradient_and_bad_lr_fail():
    with pytest.raises(KeyError, match=r"no gradient for parameters \['b'\]"):
        SGD(_params(), lr=0.1).step({"w": np.zeros(2)})
    with pytest.raises(ValueError, match="learning rate"):
        SGD(_params(), lr=-1.0)


def test_warmup_cosine_shape():
    kw = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=10, total_steps=110)
    assert warmup_cosine_lr(0, **kw) == pytest.approx(1e-4)
    assert warmup_cosine_lr(9, **kw) == pytest.approx(1e-3)
    assert warmup_cosine_lr(10, **kw) == pytest.approx(1e-3)
    assert warmup_cosine_lr(60, **kw) == pytest.approx(5.5e-4)
    assert warmup_cosine_lr(110, **kw) == pytest.approx(1e-4)
    assert warmup_cosine_lr(5000, **kw) == pytest.approx(1e-4)
    lrs = [warmup_cosine_lr(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        warmup_cosine_lr(0, max_lr=1.0, min_lr=0.0, warmup_steps=5, total_steps=3)


def test_clip_grad_norm():
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(grads["a"], [0.6], rtol=1e-6)
    small = {"a": np.array([0.1])}
    clip_grad_norm(small, 1.0)
    np.testing.assert_array_equal(small["a"], [0.1])
    bad = {"a": np.array([np.inf])}
    assert clip_grad_norm(bad, 1.0) == math.inf


@pytest.mark.parametrize("make", [
    lambda p: Adam(p, lr=1e-2, betas=(0.9, 0.99)),
    lambda p: Adam(p, lr=1e-2, weight_decay=0.1),
    lambda p: AdamW(p, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, no_decay=["b"]),
], ids=["adam", "adam + L2", "adamw"])
def test_the_fused_adam_loop_agrees_with_the_plain_numpy_lines(make, monkeypatch):
    """float32 parameters take the numba loop, which computes in float64 and rounds once; the
    plain lines round after each operation. After 20 steps of random gradients they agree to
    float32's rounding (measured: 1.4e-7, 1.1e-7 and 6.6e-7 relative at most), and the moments
    too."""
    rng = np.random.default_rng(0)
    start = {"w": rng.standard_normal((7, 5)).astype(np.float32),
             "b": rng.standard_normal(5).astype(np.float32)}
    grads = [{n: rng.standard_normal(v.shape).astype(np.float32) for n, v in start.items()}
             for _ in range(20)]
    runs = []
    for fused in (True, False):
        monkeypatch.setattr(optimizers, "FUSED", fused)
        params = {n: v.copy() for n, v in start.items()}
        opt = make(params)
        for g in grads:
            opt.step(g)
        runs.append((params, opt.state))
    (fused_params, fused_state), (plain_params, plain_state) = runs
    for name in start:
        np.testing.assert_allclose(fused_params[name], plain_params[name], rtol=2e-6, atol=1e-7)
        for slot in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(fused_state[name][slot], plain_state[name][slot],
                                       rtol=2e-6, atol=1e-7)  # m cancels towards 0
        assert fused_params[name].dtype == np.float32


def test_only_float32_contiguous_arrays_take_the_fused_loop():
    w32 = np.ones((4, 4), np.float32)
    assert optimizers._fusable(w32, w32, w32, w32)
    assert not optimizers._fusable(w32.astype(np.float64), w32, w32, w32)
    assert not optimizers._fusable(w32.T[:2], w32[:2], w32[:2], w32[:2])


def test_the_fused_sum_of_squares_agrees_with_the_numpy_line(monkeypatch):
    from phase_01_nn import clipping

    rng = np.random.default_rng(0)
    grads = {"w": rng.standard_normal((300, 70)).astype(np.float32),
             "b": (1e3 * rng.standard_normal(70)).astype(np.float32),
             "v": rng.standard_normal((4, 5)).astype(np.float32).T}  # not contiguous: NumPy
    fused = clipping.global_norm(grads)
    monkeypatch.setattr(clipping, "FUSED", False)
    plain = clipping.global_norm(grads)
    assert math.isclose(fused, plain, rel_tol=1e-13)
    monkeypatch.setattr(clipping, "FUSED", True)
    for bad in (np.inf, np.nan):
        grads["w"][3, 4] = bad
        assert not math.isfinite(clipping.global_norm(grads))
