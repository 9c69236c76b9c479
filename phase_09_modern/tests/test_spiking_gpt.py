import json

import pytest
import torch

from phase_07_gpt.model import GPT, GPTConfig
from phase_09_modern.models.spiking_gpt import (
    ENERGY_PER_ACCUMULATE_PJ,
    ENERGY_PER_MAC_PJ,
    LIFConfig,
    SpikeMonitor,
    SpikingMLP,
    lif,
    linear_macs_per_token,
    spiking_gpt,
    surrogate_grad,
)
from phase_09_modern.research import spiking as spiking_experiment
from phase_09_modern.research.spiking import CONDITIONS, run_spiking, spiking_markdown

CONFIG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, bias=False)


def test_the_spiking_gpt_starts_from_the_ann_weights_and_keeps_their_names():
    torch.manual_seed(0)
    ann = GPT(CONFIG)
    torch.manual_seed(0)
    snn = spiking_gpt(CONFIG, LIFConfig(steps=4))
    assert all(isinstance(b.mlp, SpikingMLP) for b in snn.transformer.h)
    ann_state, snn_state = ann.state_dict(), snn.state_dict()
    assert ann_state.keys() == snn_state.keys()
    assert all(torch.equal(ann_state[k], snn_state[k]) for k in ann_state)


def test_the_spiking_gpt_trains_through_the_surrogate():
    torch.manual_seed(0)
    model = spiking_gpt(CONFIG, LIFConfig(steps=4, threshold=0.01))
    idx = torch.randint(0, 11, (2, 8))
    logits, loss = model(idx, idx)
    assert logits.shape == (2, 8, 11)
    loss.backward()
    c_fc = model.transformer.h[0].mlp.c_fc.weight.grad
    assert c_fc is not None and c_fc.abs().sum() > 0  # through H only the surrogate passes


def test_one_step_is_a_heaviside_with_the_surrogate_as_its_gradient():
    x = torch.tensor([-0.3, 0.99, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    out = lif(x, steps=1, threshold=1.0, surrogate="fast_sigmoid", slope=5.0, beta=0.3)
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]
    out.sum().backward()
    torch.testing.assert_close(x.grad, surrogate_grad(x.detach() - 1.0, "fast_sigmoid", 5.0))


def _mlp_with_known_preactivations(steps: int) -> SpikingMLP:
    """Width 2 -> 8 hidden units -> 2 outputs; c_fc copies x[0] into the first four units with
    gains 0.6, 0.3, 2.0, -1.0 and leaves the other four at 0 (never firing)."""
    torch.manual_seed(0)
    mlp = GPT(GPTConfig(vocab_size=3, block_size=2, n_layer=1, n_head=1, n_embd=2,
                        bias=False)).transformer.h[0].mlp
    spiking = SpikingMLP(mlp, LIFConfig(steps=steps, beta=1.0, threshold=1.0))
    with torch.no_grad():
        spiking.c_fc.weight.zero_()
        spiking.c_fc.weight[:4, 0] = torch.tensor([0.6, 0.3, 2.0, -1.0])
    return spiking


def test_the_monitor_counts_rates_dead_units_and_synaptic_operations():
    """Per token with x[0] = 1 and T = 4 the hand count (test_spiking's) is 2 + 1 + 4 + 0 = 7
    spikes of 8 x 4 possible; x[0] = 0 fires nothing. Three tokens: 14 spikes in all."""
    mlp = _mlp_with_known_preactivations(steps=4)
    model = torch.nn.Sequential(mlp)
    x = torch.tensor([[[1.0, 5.0], [0.0, 5.0], [1.0, -5.0]]])
    with SpikeMonitor(model) as monitor:
        model(x)
    (row,) = monitor.summary()
    assert monitor.spikes["0"].tolist() == [4, 2, 8, 0, 0, 0, 0, 0]
    assert row["tokens"] == 3
    assert row["firing_rate"] == pytest.approx(14 / (3 * 8 * 4))
    assert row["dead_fraction"] == pytest.approx(5 / 8)
    assert row["sops"] == pytest.approx(14 * 2 / 3)  # each spike reaches the 2 outputs
    assert row["macs"] == 8 * 2
    assert row["energy_snn_pj"] == pytest.approx(row["sops"] * ENERGY_PER_ACCUMULATE_PJ)
    assert row["energy_ann_pj"] == pytest.approx(16 * ENERGY_PER_MAC_PJ)
    model(x)  # the hooks are off after the block
    assert monitor.spikes["0"].sum() == 14


def test_the_monitor_refuses_a_model_without_spiking_layers():
    with pytest.raises(ValueError, match="SpikingMLP"):
        SpikeMonitor(GPT(CONFIG))


def test_linear_macs_count_every_linear_layer():
    model = GPT(CONFIG)
    c, v = CONFIG.n_embd, CONFIG.padded_vocab_size
    assert linear_macs_per_token(model) == CONFIG.n_layer * 12 * c * c + c * v


@pytest.mark.parametrize("bad, match", [({"steps": 0}, "steps"), ({"reset": "hard"}, "reset"),
                                        ({"surrogate": "relu"}, "surrogate")])
def test_bad_neuron_options_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        LIFConfig(**bad)


def test_run_spiking_writes_the_table_and_plots(tmp_path, monkeypatch):
    monkeypatch.setenv("TFS_DATA_DIR", str(tmp_path))
    (tmp_path / "tiny.txt").write_text("to be or not to be, that is the question. " * 40)
    tiny = dict(data=str(tmp_path / "tiny.txt"), block_size=8, n_layer=1, n_head=1, n_embd=8,
                batch_size=4, max_iters=4, warmup_iters=1, eval_interval=2, eval_iters=2)
    lines = []
    result = run_spiking(tmp_path / "out", size="small", seeds=2, overrides=tiny,
                         log=lines.append)
    for name in ("results.json", "results.md", "val_loss.png", "firing_rate.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert [row["condition"] for row in result["table"]] == [c.label for c in CONDITIONS]
    assert result["table"][0]["gap_to_ann"] == (0.0, 0.0)
    assert all(len(row["firing_rate"]) == 1 for row in result["table"][1:])
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert markdown == spiking_markdown(result)
    assert all(f"| {c.label} |" in markdown for c in CONDITIONS)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["table"][1]["macs"] == 4 * 8 * 8
    assert len(lines) == 8

    def no_training(*args):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(spiking_experiment, "train_condition", no_training)
    again = run_spiking(tmp_path / "out", size="small", seeds=2, overrides=tiny, log=lines.append)
    assert json.dumps(again["table"]) == json.dumps(result["table"])
