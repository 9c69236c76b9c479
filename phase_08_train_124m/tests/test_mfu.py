import pytest
import torch

from phase_07_gpt.device import flops_per_token, peak_flops_for
from phase_07_gpt.model import GPT
from phase_08_train_124m.mfu import device_peak_flops, model_flops_utilisation
from phase_08_train_124m.presets import PRESETS


def test_the_124m_flop_count_worked_by_hand():
    # N = 124,475,904 parameters - 786,432 of the position table = 123,689,472
    # 6N = 742,136,832; attention 12 x 12 layers x 768 x 1024 = 113,246,208; sum 855,383,040
    config = PRESETS["gpt2-124m"]
    with torch.device("meta"):
        model = GPT(config.model_config())
    n = model.num_params()
    assert n == 123_689_472
    assert flops_per_token(n, 12, 768, 1024) == 855_383_040
    # 10B tokens: 8.55e18 FLOPs; at 400k tokens/s on one H100 SXM: 855383040 * 4e5 / 989e12
    assert model_flops_utilisation(855_383_040, 400_000, 989e12) == pytest.approx(0.345956, 1e-5)
    assert model_flops_utilisation(855_383_040, 3_200_000, 989e12, n_gpus=8) == pytest.approx(
        0.345956, 1e-5)


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA GeForce GTX 1080", None)])
def test_the_peak_table_tells_the_h100_parts_apart(name, peak):
    assert peak_flops_for(name) == peak


def test_the_fallback_is_no_mfu_unless_a_peak_is_given():
    assert device_peak_flops(torch.device("cpu")) is None
    assert device_peak_flops(torch.device("cpu"), override_tflops=100.0) == 100e12
    with pytest.raises(ValueError, match="peak_flops > 0"):
        model_flops_utilisation(1.0, 1.0, 0.0)
