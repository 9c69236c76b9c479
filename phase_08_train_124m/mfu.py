"""Model FLOPs utilisation: the FLOPs a training step must do, over what the GPUs could do.

    MFU = flops_per_token * tokens_per_second / (peak_flops_per_gpu * n_gpus)

``flops_per_token`` is phase 7's count (PaLM's appendix B, Chowdhery et al. 2022, as nanoGPT's
``estimate_mfu``): 6N for the weights (a multiply-add is 2 FLOPs forward and 4 backward) plus
12 * n_layer * n_embd * T for attention's q k^T and P v, which hold no parameters. N is
``GPT.num_params()``: every parameter except the position table. The tied token table counts
once, because the output head multiplies by it (2 V C FLOPs a token forward, the largest single
matmul of the 124M model); the position table is only indexed, which costs no FLOPs. The causal
mask's skipped half of attention is not subtracted, as in PaLM and nanoGPT, so numbers compare.

The peak is the dense (not 2:4-sparse) bfloat16 tensor-core rate from NVIDIA's data sheets,
phase 7's table ``phase_07_gpt/device.py::PEAK_BF16_DENSE``; NVIDIA quotes the sparse rate, twice
the dense one, in the headline column.
Notes: ``phase_08_train_124m/notes/02_the_124m_recipe.md``.
"""

from __future__ import annotations

import torch

from phase_07_gpt.device import peak_flops_for


def device_peak_flops(device: torch.device, override_tflops: float = 0.0) -> float | None:
    """The peak of one GPU of ``device``. The fallback for a GPU not in the table (and for MPS
    and the CPU, which have no such figure) is no MFU at all, not a guess: MFU is then reported
    as unknown, unless ``override_tflops`` (``--peak-tflops``, from your GPU's data sheet)
    gives the peak."""
    if override_tflops > 0:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    return peak_flops_for(torch.cuda.get_device_name(device))


def model_flops_utilisation(flops_per_token: float, tokens_per_second: float,
                            peak_flops: float, n_gpus: int = 1) -> float:
    """The fraction of the GPUs' peak that the model's necessary FLOPs use."""
    if peak_flops <= 0 or n_gpus < 1:
        raise ValueError(f"need peak_flops > 0 and n_gpus >= 1, got {peak_flops}, {n_gpus}")
    return flops_per_token * tokens_per_second / (peak_flops * n_gpus)
