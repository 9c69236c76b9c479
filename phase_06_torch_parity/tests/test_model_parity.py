import numpy as np
import pytest

from phase_05_transformer_numpy.gpt import GPT
from phase_06_torch_parity.gpt_twin import (
    numpy_name,
    numpy_to_torch_state_dict,
    torch_name,
    torch_to_numpy_params,
)
from phase_06_torch_parity.model_parity import (
    MODEL_TOL,
    VARIANTS,
    one_step_parity,
    tiny_config,
    training_parity,
)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("from_torch", [False, True], ids=["numpy->torch", "torch->numpy"])
def test_logits_loss_and_every_gradient_agree(variant, from_torch):
    result = one_step_parity(tiny_config(**VARIANTS[variant]), seed=3, from_torch=from_torch)
    assert result.worst <= MODEL_TOL, result


@pytest.mark.parametrize("variant", VARIANTS)
def test_twenty_adamw_steps_give_the_same_loss_curve(variant):
    ours, theirs, final_weights = training_parity(tiny_config(**VARIANTS[variant]), steps=20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=0)
    assert final_weights <= 1e-8
    assert ours[-1] < ours[0] - 0.1  # the weights really moved: the loss fell


def test_names_round_trip_and_every_weight_is_mapped():
    config = tiny_config(bias=True, tie_weights=False)
    model = GPT(config, rng=np.random.default_rng(0), dtype=np.float64)
    for name in model.state_dict():
        assert numpy_name(torch_name(name)) == name
    back = torch_to_numpy_params(numpy_to_torch_state_dict(model.state_dict(), config), config)
    assert back.keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(back[name], value)
    assert torch_name("h.1.attn.w_qkv") == "transformer.h.1.attn.c_attn.weight"


def test_an_unknown_name_fails_clearly():
    with pytest.raises(KeyError, match="no mapping for the weight name 'h.0.attn.bogus'"):
        torch_name("h.0.attn.bogus")
