"""Where training runs and in what precision, decided once per run.

- device: CUDA if present, else Apple's MPS, else the CPU, unless a flag names one;
- precision: on CUDA, bfloat16 autocast where the GPU supports it (Ampere and later): the same
  exponent range as float32, so no loss scaling is needed; float16 autocast with a
  ``GradScaler`` on older GPUs, because float16 gradients underflow without it. MPS and the CPU
  train in float32 and never get a CUDA scaler;
- ``torch.compile``: on request, and only where it works (not on MPS, not where dynamo is not
  supported); elsewhere it is turned off with a message rather than a crash;
- MFU, model FLOPs utilisation (Chowdhery et al. 2022's PaLM appendix): the FLOPs a step must
  do, 6N per token plus attention's 12 L T C, against the GPU's peak bfloat16 rate.
Notes: ``phase_07_gpt/notes/03_the_trainer.md``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Peak dense bfloat16 tensor-core FLOP/s, by a substring of the CUDA device name.
# (substring of torch.cuda.get_device_name, dense bf16 tensor-core FLOP/s), the most specific
# first. NVIDIA's data sheets put the 2:4-sparse rate, twice the dense one, in the headline
# column; these are the dense rates: A100 312 (SXM and PCIe alike); H100 SXM 989, PCIe 756, NVL
# 835; H200 SXM 989, NVL 835 ("H100 80GB HBM3" is how the SXM part names itself). V100 and T4
# have no bf16: their fp16 tensor-core rates stand in.
PEAK_BF16_DENSE = (
    ("H200 NVL", 835e12), ("H200", 989e12),
    ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12),
    ("A100", 312e12), ("L40S", 362e12), ("A10G", 125e12), ("4090", 165e12), ("3090", 71e12),
    ("V100", 125e12), ("T4", 65e12),
)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: no autocast, everything float32
    use_scaler: bool  # a CUDA GradScaler, only with float16 autocast
    compile: bool

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler("cuda", enabled=self.use_scaler)


def pick_device(name: str = "auto") -> torch.device:
    """"auto": CUDA, then MPS, then CPU. A named device that is absent fails clearly."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for, but MPS is not available here")
    if device.type not in ("cuda", "mps", "cpu"):
        raise ValueError(f"device must be auto, cpu, cuda[:N] or mps, got {name!r}")
    return device


def pick_runtime(device_name: str = "auto", dtype: str = "auto",
                 compile: bool = False) -> Runtime:
    """The device, autocast dtype, scaler and compile decision for a run (module docstring)."""
    device = pick_device(device_name)
    if dtype == "auto":
        if device.type == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {sorted(DTYPES)}, got {dtype!r}")
    if dtype == "float16" and device.type != "cuda":
        raise ValueError(f"float16 training needs loss scaling, which this trainer does on CUDA "
                         f"only; on {device.type} use float32 or bfloat16")
    autocast_dtype = None if dtype == "float32" else DTYPES[dtype]
    if compile and not compile_supported(device):
        print(f"torch.compile is not supported on {device.type} here; running without it")
        compile = False
    return Runtime(device, autocast_dtype, use_scaler=dtype == "float16", compile=compile)


def compile_supported(device: torch.device) -> bool:
    if device.type == "mps":
        return False
    try:
        return torch._dynamo.is_dynamo_supported()
    except (AttributeError, RuntimeError):
        return False


def peak_flops_for(name: str) -> float | None:
    """The dense bf16 peak of the GPU called ``name``; None for a GPU not in the table."""
    lowered = name.lower()
    return next((flops for key, flops in PEAK_BF16_DENSE if key.lower() in lowered), None)


def peak_flops(device: torch.device) -> float | None:
    """The GPU's peak bfloat16 FLOP/s if it is in the table; None elsewhere (CPU, MPS)."""
    if device.type != "cuda":
        return None
    return peak_flops_for(torch.cuda.get_device_name(device))


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block_size: int) -> float:
    """Forward and backward FLOPs per token: 6N for the weights (2 forward, 4 backward per
    multiply-add), plus 12 L T C for attention's q k^T and P v (Kaplan et al. 2020, nanoGPT)."""
    return 6 * n_params + 12 * n_layer * n_embd * block_size
