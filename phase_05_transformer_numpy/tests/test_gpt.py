"""The GPT: its config's errors, the whole-model gradient check, causality, naming, dtypes."""

import numpy as np
import pytest

import phase_04_attention.layer_norm as layer_norm_module
from phase_00_math.gradcheck import numerical_gradient, relative_error
from phase_05_transformer_numpy.diagnose import explain_model_failure, first_failing_op
from phase_05_transformer_numpy.gpt import GPT, GPTConfig

TINY = GPTConfig(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=8, bias=True)


def _model_gradient_errors(model, ids, targets):
    """Relative error of every parameter's analytic gradient against central differences of the
    loss, the parameter perturbed in place."""
    model.zero_grad()
    model.forward(ids, targets)
    model.backward()
    errors = {}
    for name, value in model.parameters().items():
        analytic = model.gradients()[name].copy()

        def loss_at(v, value=value):
            saved = value.copy()
            value[...] = v
            try:
                return float(model.forward(ids, targets)[1])
            finally:
                value[...] = saved

        errors[name] = relative_error(analytic, numerical_gradient(loss_at, value))
    return errors


@pytest.mark.parametrize("pre_ln", [True, False])
def test_whole_model_gradient_check(pre_ln):
    """2 layers, 2 heads, width 8, context 4, float64: every parameter within 1e-6."""
    config = GPTConfig(**{**TINY.__dict__, "pre_ln": pre_ln})
    rng = np.random.default_rng(0)
    model = GPT(config, rng=rng, dtype=np.float64)
    for value in model.parameters().values():  # move off the special init (zeros, ones)
        value += 0.3 * rng.standard_normal(value.shape)
    ids, targets = rng.integers(0, 7, size=(3, 4)), rng.integers(0, 7, size=(3, 4))
    errors = _model_gradient_errors(model, ids, targets)
    assert len(errors) == 2 + 12 * 2 + 2
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-6, explain_model_failure(
        f"{worst}: relative error {errors[worst]:.2e} in the whole-model check")


def test_untied_sinusoidal_tanh_model_gradients():
    config = GPTConfig(vocab_size=5, block_size=3, n_layer=1, n_head=2, n_embd=4,
                       tie_weights=False, positions="sinusoidal", gelu="tanh")
    rng = np.random.default_rng(1)
    model = GPT(config, rng=rng, dtype=np.float64)
    for value in model.parameters().values():
        value += 0.3 * rng.standard_normal(value.shape)
    errors = _model_gradient_errors(model, rng.integers(0, 5, (2, 3)), rng.integers(0, 5, (2, 3)))
    assert "lm_head.w" in errors and "wpe.weight" not in errors
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-6, explain_model_failure(
        f"{worst}: relative error {errors[worst]:.2e} in the whole-model check")


def test_a_model_failure_names_the_first_failing_op(monkeypatch):
    assert first_failing_op() is None
    reference = layer_norm_module.layer_norm_backward

    def halved(dout, cache):  # a planted bug: every gradient of layer norm is half the truth
        return tuple(None if g is None else 0.5 * g for g in reference(dout, cache))

    monkeypatch.setattr(layer_norm_module, "layer_norm_backward", halved)
    message = explain_model_failure("h.0.ln_1.gamma: relative error 3.3e-01")
    assert "the first op that fails its own check is layer_norm_backward: run `pytest " \
           "phase_04_attention`" in message
    assert "0.5x the true one: a missing factor of 2?" in message
    monkeypatch.undo()
    assert "Every op the model uses passes its own gradient check" in explain_model_failure("x")


def test_parameter_names_mirror_gpt2():
    names = set(GPT(TINY, rng=np.random.default_rng(0)).parameters())
    block = {f"h.0.{n}" for n in ("ln_1.gamma", "ln_1.beta", "attn.w_qkv", "attn.b_qkv",
                                  "attn.w_o", "attn.b_o", "ln_2.gamma", "ln_2.beta",
                                  "mlp.w_fc", "mlp.b_fc", "mlp.w_proj", "mlp.b_proj")}
    assert block <= names and {"wte.weight", "wpe.weight", "ln_f.gamma", "ln_f.beta"} <= names
    no_bias = GPT(GPTConfig(**{**TINY.__dict__, "bias": False}), rng=np.random.default_rng(0))
    assert not [n for n in no_bias.parameters() if n.endswith(("beta", "b_qkv", "b_o", "b_fc"))]


def test_parameter_count_matches_the_formula():
    c = GPTConfig()  # the shakespeare-char preset: 4 layers, width 128, context 64, no biases
    model = GPT(c, rng=np.random.default_rng(0))
    per_block = 12 * c.n_embd**2 + 2 * c.n_embd
    embeddings = (c.vocab_size + c.block_size) * c.n_embd
    assert model.num_parameters() == embeddings + c.n_layer * per_block + c.n_embd == 804_096


def test_causality_future_tokens_do_not_change_past_logits():
    model = GPT(TINY, rng=np.random.default_rng(0), dtype=np.float64)
    ids = np.array([[1, 2, 3, 4]])
    changed = ids.copy()
    changed[0, 2:] = [6, 0]
    a, _ = model.forward(ids)
    b, _ = model.forward(changed)
    np.testing.assert_array_equal(a[0, :2], b[0, :2])
    assert not np.allclose(a[0, 2:], b[0, 2:])


def test_float32_throughout():
    model = GPT(TINY, rng=np.random.default_rng(0))
    rng = np.random.default_rng(0)
    logits, loss = model.forward(rng.integers(0, 7, (2, 4)), rng.integers(0, 7, (2, 4)))
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    model.backward()
    assert all(g.dtype == np.float32 for g in model.gradients().values())
    # an untrained model predicts near uniformly: loss ~ log V
    assert float(loss) == pytest.approx(np.log(7), abs=0.05)


def test_grads_accumulate_over_forward_backward_pairs_and_zero_grad_resets_them():
    model = GPT(TINY, rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 7, (2, 4))
    model.forward(ids, ids)
    model.backward()
    once = {k: v.copy() for k, v in model.gradients().items()}
    model.forward(ids, ids)
    model.backward()
    np.testing.assert_allclose(model.gradients()["wte.weight"], 2 * once["wte.weight"],
                               rtol=1e-6)
    model.zero_grad()
    model.forward(ids, ids)
    model.backward()
    np.testing.assert_array_equal(model.gradients()["h.1.mlp.w_fc"], once["h.1.mlp.w_fc"])


def test_the_backward_releases_the_forward_caches():
    """Nothing of a forward is held after its backward (as torch frees saved tensors), and a
    second backward says what is missing instead of reusing stale arrays."""
    model = GPT(TINY, rng=np.random.default_rng(0))
    ids = np.random.default_rng(1).integers(0, 7, (2, 4))
    model.forward(ids, ids)
    model.backward()
    for block in model.h.modules.values():
        for name in ("ln_1", "attn", "ln_2", "mlp"):
            assert block.modules[name]._cache is None
    assert model._head_cache is None and model._loss_cache is None
    with pytest.raises(RuntimeError, match="needs a forward with targets first"):
        model.backward()


@pytest.mark.parametrize(("change", "message"), [
    ({"n_embd": 10, "n_head": 4}, "n_embd = 10 is not divisible by n_head = 4"),
    ({"block_size": 0}, r"GPTConfig.block_size must be a positive integer, got 0"),
    ({"n_layer": -1}, r"GPTConfig.n_layer must be a positive integer, got -1"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
    ({"positions": "rope"}, "positions must be one of"),
    ({"gelu": "relu"}, "gelu must be one of"),
    ({"init": "xavier"}, r"init must be one of \('gpt2', 'width'\)"),
])
def test_config_errors(change, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**change)


@pytest.mark.parametrize(("init", "block_std"), [("gpt2", 0.02), ("width", 1 / 8)])
def test_initialisation_rules(init, block_std):
    # width 64, 8 layers: the blocks' matrices N(0, block_std^2), the residual projections
    # divided by sqrt(2 * 8) = 4; the token and position tables 0.02 under both rules
    config = GPTConfig(vocab_size=50, block_size=16, n_layer=8, n_head=4, n_embd=64, init=init)
    params = GPT(config, rng=np.random.default_rng(0), dtype=np.float64).parameters()

    def std(suffix):
        return np.concatenate([v.ravel() for k, v in params.items() if k.endswith(suffix)]).std()

    for suffix, expected in [("w_qkv", block_std), ("w_fc", block_std), ("w_o", block_std / 4),
                             ("w_proj", block_std / 4), ("wte.weight", 0.02),
                             ("wpe.weight", 0.02)]:
        assert abs(std(suffix) / expected - 1) < 0.05, (suffix, std(suffix), expected)


def test_input_errors():
    model = GPT(TINY, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="longer than the context block_size = 4"):
        model.forward(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"token id 7 is outside the vocabulary \[0, 7\)"):
        model.forward(np.array([[1, 7]]))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model.forward(np.array([1, 2]))
    model.forward(np.array([[1, 2]]))
    with pytest.raises(RuntimeError, match="needs a forward with targets"):
        model.backward()
