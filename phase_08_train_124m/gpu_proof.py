"""``python -m phase_08_train_124m.gpu_proof [--out DIR] [--budget-s 480] [--profile auto]``

Everything phases 7 and 8 claim for CUDA, measured by one command that fits a short loan of one
GPU, and the same command at a tiny size on a CPU, so that it cannot rot while no GPU is at hand:
1. GPT-2 Small at context 1024 (bf16 autocast, torch.compile, SDPA, fused AdamW, phase 8's
   training step), the largest micro-batch that fits: ms per step, tokens/s, MFU, peak memory;
   then transformers' GPT2LMHeadModel built from the same config and trained the same way on
   the same batches: the tokens/s ratio, ours over theirs;
2. correctness: the loss curve of part 1's run against float32 eager on the same batches from
   the same initial weights; a random GPT-2 saved in the Hugging Face format, loaded by
   ``GPT.from_pretrained``, gives transformers' logits on the same device;
3. phase 7's shakespeare-char-gpu preset for about three minutes: the validation loss reached
   and the loss per minute, against nanoGPT's published 1.4697 after 5000 steps;
4. the machine: device, driver, CUDA, torch and transformers versions.
Each part has a share of the budget and is cut when it runs out (recorded as "cut at N steps");
a part that cannot run (no transformers, no corpus, out of memory) is skipped with the reason.
The JSON and the Markdown table are rewritten after each part, so a kill loses nothing done.
Nothing is downloaded: transformers' model is built from a config, the corpus is read from
``$TFS_DATA_DIR`` or the cache.
Notes: ``phase_08_train_124m/notes/03_gpu_proof.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from phase_01_nn.corpus import CorpusNotFoundError, load_corpus
from phase_01_nn.metrics import plot_curves
from phase_07_gpt.dataset import TokenData, build_tokenizer, get_batch
from phase_07_gpt.device import Runtime, flops_per_token, pick_runtime
from phase_07_gpt.model import GPT
from phase_07_gpt.presets import TrainConfig
from phase_07_gpt.presets import preset as phase_7_preset
from phase_07_gpt.train import (
    accumulate_gradients,
    clip_gradients,
    estimate_loss,
    lr_at,
    make_optimizer,
    set_learning_rate,
)
from phase_08_train_124m.distributed import Distributed
from phase_08_train_124m.mfu import device_peak_flops, model_flops_utilisation
from phase_08_train_124m.presets import PRESETS, RunConfig
from phase_08_train_124m.proof_report import (
    complete,
    describe_machine,
    mark,
    new_section,
    print_table,
    write_report,
)
from phase_08_train_124m.train import train_step

NANOGPT_VAL_LOSS = 1.4697  # nanoGPT's README: train_shakespeare_char.py, 5000 steps, one A100
PHRASES, PHRASE_LENGTH = 256, 16


@dataclass(frozen=True)
class ProofProfile:
    """Every size and step count of the proof, so the CPU version differs in one place."""

    name: str
    device: str
    model: RunConfig  # phase 8's config: the model, and the optimiser of the timed run
    micro_batches: tuple[int, ...]  # tried in order until one fits in memory
    warmup_steps: int  # untimed (the first compiles); with the timed ones, the curve of part 2
    timed_steps: int
    compile: bool
    reference_micro_batch: int  # float32 eager accumulates these up to the timed micro-batch
    curve_tolerance: float  # relative, at every step (notes, section "the tolerances")
    first_step_tolerance: float  # relative, at step 0, where the weights are still the same
    logits_model: dict  # transformers.GPT2Config sizes for the from_pretrained check
    logits_batch: tuple[int, int]  # (B, T) of the token ids compared
    logits_tolerance: float  # absolute, float32 on both sides
    shakespeare: TrainConfig
    threads: int = 0  # torch's CPU threads; 0 leaves torch's default
    shares: dict = field(default_factory=lambda: {
        "throughput_ours": 0.22, "loss_curve": 0.11, "pretrained_logits": 0.03,
        "throughput_transformers": 0.20, "shakespeare": 0.36})


GPT2_SMALL = {"vocab_size": 50257, "n_positions": 1024, "n_layer": 12, "n_head": 12, "n_embd": 768}

PROFILES = {
    # One H100 or H200 for about eight minutes. The timed run's lr warms up over 10 of its 50
    # steps (the 124M preset's 715 would leave the curve of part 2 flat).
    "cuda": ProofProfile(
        name="cuda", device="cuda",
        model=replace(PRESETS["gpt2-124m"], warmup_iters=10, max_iters=50),
        micro_batches=(64, 32, 16, 8, 4, 2, 1), warmup_steps=10, timed_steps=40, compile=True,
        reference_micro_batch=8, curve_tolerance=0.02, first_step_tolerance=1e-3,
        logits_model=GPT2_SMALL,
        logits_batch=(2, 1024), logits_tolerance=1e-4,
        shakespeare=phase_7_preset("shakespeare-char-gpu", save_checkpoints=False)),
    # Every part at a toy size, in seconds on a laptop CPU: bfloat16 autocast runs on the CPU
    # too, so part 2 still compares two precisions; compiling would cost more than it shows.
    "cpu": ProofProfile(
        name="cpu", device="cpu",
        model=RunConfig(vocab_size=512, block_size=32, n_layer=2, n_head=2, n_embd=32,
                        warmup_iters=2, max_iters=6, lr=3e-3, min_lr=3e-4, device="cpu"),
        micro_batches=(8,), warmup_steps=2, timed_steps=4, compile=False,
        reference_micro_batch=4, curve_tolerance=0.02, first_step_tolerance=1e-3,
        logits_model={"vocab_size": 99, "n_positions": 32, "n_layer": 2, "n_head": 4,
                      "n_embd": 32},
        logits_batch=(2, 32), logits_tolerance=1e-5,
        shakespeare=phase_7_preset("tiny", device="cpu", max_iters=40, eval_interval=20,
                                   save_checkpoints=False), threads=1),
}


@dataclass(frozen=True)
class ProofRun:
    """What every part is given: the profile, the report so far, the output directory."""

    profile: ProofProfile
    report: dict
    out: Path


class SkipPart(Exception):
    """A part that cannot run here; the message says why."""


@dataclass
class StepRun:
    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cut_at: int | None = None  # the step the budget stopped it at
    n_params: int = 0  # N of the FLOP count
    peak_memory_gib: float | None = None  # CUDA only


class FixedBatches:
    """One (B, T) batch served as ``accum`` micro-batches through phase 8's ``next_batch``."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], accum: int) -> None:
        self.parts = list(zip(batch[0].chunk(accum), batch[1].chunk(accum), strict=True))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.parts.pop(0)


class CausalLMLoss(nn.Module):
    """transformers' GPT2LMHeadModel behind our ``forward(idx, targets)``; the loss is computed
    as ours is, on targets already shifted (``labels=`` would shift them a second time)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        logits = self.model(input_ids=idx).logits
        return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def phrase_batches(steps: int, batch: int, block: int, vocab: int, seed: int = 0) -> list:
    """``steps`` (x, y) batches of a synthetic corpus with something to learn: a stream of
    phrases, each one of 256 random 16-token phrases, so the loss falls from ln(vocab) within a
    few steps. The same seed gives the same batches: the fast run, the float32 reference and
    transformers' model all see them. No data set is needed."""
    generator = torch.Generator().manual_seed(seed)
    bank = torch.randint(vocab, (PHRASES, PHRASE_LENGTH), generator=generator)
    per_row = block // PHRASE_LENGTH + 2
    batches = []
    for _ in range(steps):
        rows = bank[torch.randint(PHRASES, (batch, per_row), generator=generator)]
        offset = int(torch.randint(PHRASE_LENGTH, (1,), generator=generator))
        window = rows.reshape(batch, -1)[:, offset: offset + block + 1]
        batches.append((window[:, :-1].contiguous(), window[:, 1:].contiguous()))
    return batches


def progress(steps, desc: str) -> tqdm:
    """A progress bar, shown in a log too, where it redraws every 15 s rather than every
    second so that the end of the output still holds the table."""
    return tqdm(steps, desc=desc, unit="step", disable=False,
                mininterval=1.0 if sys.stderr.isatty() else 15.0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


@contextlib.contextmanager
def float32_matmuls(precision: str):
    """"highest": true float32 matmuls (no TF32) for the references; restored afterwards."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def train_steps(model: nn.Module, batches: list, runtime: Runtime, config: RunConfig,
                deadline: float, desc: str, accum: int = 1) -> StepRun:
    """Phase 8's training step on each batch in turn (phase 7's AdamW, fused on CUDA, its lr
    schedule and clipping), each step timed to the GPU's end; cut when ``deadline`` (a
    ``time.monotonic`` instant) has passed, after at least one step."""
    optimizer = make_optimizer(model, config, runtime.device)
    step_model = torch.compile(model) if runtime.compile else model
    scaler = runtime.grad_scaler()
    named_params = list(model.named_parameters())
    run = StepRun()
    with progress(batches, desc) as bar:
        for step, batch in enumerate(bar):
            if step and time.monotonic() > deadline:
                run.cut_at = step
                break
            began = time.perf_counter()
            set_learning_rate(optimizer, lr_at(step, config))
            loss = train_step(step_model, FixedBatches(batch, accum), accum, runtime, scaler,
                              Distributed())
            scaler.unscale_(optimizer)
            clip_gradients(named_params, config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            synchronize(runtime.device)
            run.seconds.append(time.perf_counter() - began)
            run.losses.append(loss)
    if runtime.device.type == "cuda":
        run.peak_memory_gib = round(torch.cuda.max_memory_allocated(runtime.device) / 2**30, 2)
    return run


def largest_fitting_run(build, profile: ProofProfile, runtime: Runtime, micro_batches,
                        deadline: float, desc: str) -> tuple[int, StepRun, list[str], Runtime]:
    """Train ``build()`` on the proof's batches at each micro-batch in turn until one fits in
    memory. A compiler failure (a bare machine may lack a C compiler) falls back to eager, and
    says so. Returns the micro-batch, its run, what was tried and the runtime used."""
    tried: list[str] = []
    config = profile.model
    steps = profile.warmup_steps + profile.timed_steps
    for micro_batch in micro_batches:
        batches = phrase_batches(steps, micro_batch, config.block_size, config.vocab_size)
        result = attempt_run(build, batches, runtime, config, deadline, desc)
        if isinstance(result, str) and result.startswith("torch.compile failed"):
            tried.append(f"{micro_batch}: {result}; retried without it")
            runtime = replace(runtime, compile=False)
            result = attempt_run(build, batches, runtime, config, deadline, desc)
        if isinstance(result, StepRun):
            return micro_batch, result, [*tried, f"{micro_batch}: fits"], runtime
        tried.append(f"{micro_batch}: {result}")
    raise SkipPart(f"out of memory at every micro-batch tried ({'; '.join(tried)})")


def attempt_run(build, batches: list, runtime: Runtime, config: RunConfig, deadline: float,
                desc: str) -> StepRun | str:
    """The run, or why it failed: out of memory, or (compiling) an error of the compiler."""
    free_memory(runtime.device)
    try:
        model = build()
        n_params = counted_params(model)
        run = train_steps(model, batches, runtime, config, deadline, desc)
    except torch.OutOfMemoryError:
        return "out of memory"
    except Exception as error:
        if not runtime.compile:
            raise
        traceback.print_exc()
        return f"torch.compile failed ({type(error).__name__}: {first_line(error)})"
    run.n_params = n_params
    return run


def counted_params(model: nn.Module) -> int:
    """N for the FLOP count: every parameter once (a tied head counts once), less the
    position table, as ``GPT.num_params`` counts."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.endswith("wpe.weight"))


def first_line(error: BaseException, limit: int = 200) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else ""


def flash_available(device: torch.device, n_head: int, block: int, head_size: int) -> str:
    """Whether SDPA's flash kernel runs on this GPU at the model's shapes (SDPA picks it first
    when it can)."""
    if device.type != "cuda":
        return "no, CPU"
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, n_head, block, head_size, device=device, dtype=torch.bfloat16)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, q, q, is_causal=True)
    except RuntimeError as error:
        return f"no ({str(error).splitlines()[0][:120]})"
    return "yes"


def record_speed(section: dict, run: StepRun, profile: ProofProfile, micro_batch: int,
                 device: torch.device) -> None:
    """ms/step, tokens/s, MFU and peak memory of the timed steps, or why each is missing."""
    figures, missing = section["figures"], section["missing"]
    config = profile.model
    timed = run.seconds[profile.warmup_steps:]
    figures.update(micro_batch=micro_batch, first_step_s=round(run.seconds[0], 2),
                   timed_steps=len(timed), peak_memory_gib=run.peak_memory_gib)
    section["losses"], section["step_seconds"] = run.losses, run.seconds
    if run.cut_at is not None:
        mark(section, "cut", f"cut at {run.cut_at} steps: budget")
    if device.type != "cuda":
        missing["peak_memory_gib"] = "CPU: no CUDA memory counter"
    peak = device_peak_flops(device)
    if peak is None:
        missing["mfu"] = missing["peak_tflops"] = (
            "CPU: no peak FLOP/s" if device.type != "cuda" else
            f"unknown card: {torch.cuda.get_device_name(device)!r} is not in "
            f"phase_07_gpt/device.py::PEAK_BF16_DENSE")
    else:
        figures["peak_tflops"] = round(peak / 1e12)
    if not timed:
        missing["ms_per_step"] = missing["tokens_per_s"] = missing["mfu"] = (
            f"cut at {run.cut_at} steps: budget, before any timed step")
        return
    seconds = statistics.median(timed)
    figures["ms_per_step"] = round(1000 * seconds, 2)
    figures["tokens_per_s"] = round(micro_batch * config.block_size / seconds)
    if peak is not None:
        per_token = flops_per_token(run.n_params, config.n_layer, config.n_embd,
                                    config.block_size)
        figures["mfu"] = round(model_flops_utilisation(per_token, figures["tokens_per_s"],
                                                       peak), 4)


def throughput_ours(section: dict, deadline: float, proof: ProofRun) -> None:
    """Phase 7's GPT at the profile's size, trained by phase 8's step at the largest
    micro-batch that fits."""
    profile = proof.profile
    c = profile.model
    runtime = pick_runtime(profile.device, "bfloat16", profile.compile)
    if runtime.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as phase 8's trainer: TF32 for float32
        torch.backends.cudnn.allow_tf32 = True

    def build() -> GPT:
        torch.manual_seed(c.seed)
        return GPT(c.model_config()).to(runtime.device)

    micro_batch, run, tried, used = largest_fitting_run(
        build, profile, runtime, profile.micro_batches, deadline, "1. ours")
    record_speed(section, run, profile, micro_batch, used.device)
    flash = flash_available(used.device, c.n_head, c.block_size, c.n_embd // c.n_head)
    section["figures"].update(
        model=f"{c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, context {c.block_size},"
              f" vocab {c.vocab_size}: N = {run.n_params:,}",
        tried=tried, precision=f"bf16 autocast, compile {'on' if used.compile else 'off'}, "
                               f"SDPA (flash kernel usable: {flash})")
    section["compiled"] = used.compile


def throughput_transformers(section: dict, deadline: float, proof: ProofRun) -> None:
    """transformers' GPT-2 of the same size, trained by the same step on the same batches,
    from ours' micro-batch down."""
    profile = proof.profile
    try:
        import transformers
    except ImportError:
        raise SkipPart("transformers is not installed (pip install transformers)") from None
    ours = report_section(proof.report, "throughput_ours")
    if "micro_batch" not in ours["figures"]:
        raise SkipPart("part 1's run of ours found no micro-batch to compare at")
    c = profile.model
    hf_config = gpt2_config(transformers, vocab_size=c.vocab_size, n_positions=c.block_size,
                            n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd)
    runtime = pick_runtime(profile.device, "bfloat16", ours.get("compiled", profile.compile))

    def build() -> CausalLMLoss:
        torch.manual_seed(c.seed)
        return CausalLMLoss(transformers.GPT2LMHeadModel(hf_config)).to(runtime.device)

    start = ours["figures"]["micro_batch"]
    sizes = [b for b in profile.micro_batches if b <= start]
    micro_batch, run, _, used = largest_fitting_run(build, profile, runtime, sizes, deadline,
                                                    "1. transformers")
    record_speed(section, run, profile, micro_batch, used.device)
    section["figures"]["precision"] = (f"bf16 autocast, compile {'on' if used.compile else 'off'}"
                                       f", attn_implementation='sdpa'")
    if micro_batch != start:
        section["missing"]["ratio"] = f"micro-batch {micro_batch} against ours' {start}"
    elif "tokens_per_s" in section["figures"] and "tokens_per_s" in ours["figures"]:
        section["figures"]["ratio"] = round(
            ours["figures"]["tokens_per_s"] / section["figures"]["tokens_per_s"], 3)


def gpt2_config(transformers, **sizes):
    """transformers' GPT2Config without dropout or a KV cache, with SDPA attention."""
    vocab = sizes["vocab_size"]
    return transformers.GPT2Config(**sizes, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                   use_cache=False, bos_token_id=vocab - 1,
                                   eos_token_id=vocab - 1, attn_implementation="sdpa")


def loss_curve(section: dict, deadline: float, proof: ProofRun) -> None:
    """Part 1's run of ours (bf16 autocast, compiled) against float32 eager, with true float32
    matmuls, from the same initial weights on the same batches; float32 accumulates smaller
    micro-batches up to the same batch, so that it fits in memory."""
    profile = proof.profile
    ours = report_section(proof.report, "throughput_ours")
    fast = ours.get("losses")
    if not fast:
        raise SkipPart("part 1's run of ours made no steps")
    config = profile.model
    micro_batch = ours["figures"]["micro_batch"]
    accum = max(1, micro_batch // profile.reference_micro_batch)
    runtime = pick_runtime(profile.device, "float32", compile=False)
    batches = phrase_batches(len(fast), micro_batch, config.block_size, config.vocab_size)
    with float32_matmuls("highest"):
        torch.manual_seed(config.seed)
        model = GPT(config.model_config()).to(runtime.device)
        run = train_steps(model, batches, runtime, config, deadline, "2. float32 eager", accum)
    del model
    free_memory(runtime.device)
    if run.cut_at is not None:
        mark(section, "cut", f"cut at {run.cut_at} of {len(fast)} steps: budget")
    pairs = list(zip(fast, run.losses, strict=False))
    differences = [abs(a - b) for a, b in pairs]
    relative = [d / b for d, (_, b) in zip(differences, pairs, strict=True)]
    section["losses"] = {"fast": fast[: len(pairs)], "reference": run.losses}
    section["figures"].update(
        steps=len(pairs), fast=f"{ours['figures']['precision']}, micro-batch {micro_batch}",
        reference=f"float32 eager, no TF32, {accum} x {micro_batch // accum} accumulated",
        first_loss=f"{pairs[0][0]:.4f} / {pairs[0][1]:.4f}",
        last_loss=f"{pairs[-1][0]:.4f} / {pairs[-1][1]:.4f}",
        first_rel_diff=relative[0], max_abs_diff=max(differences), max_rel_diff=max(relative),
        tolerance=f"{profile.first_step_tolerance:g} at step 0, {profile.curve_tolerance:g} "
                  f"at every step",
        passed=relative[0] <= profile.first_step_tolerance
        and max(relative) <= profile.curve_tolerance)


def pretrained_logits(section: dict, deadline: float, proof: ProofRun) -> None:
    """A random GPT2LMHeadModel (LayerNorms and biases drawn too, so a weight left unmapped
    shows), saved in the Hugging Face format, loaded by ``GPT.from_pretrained``; both run in
    float32 with true float32 matmuls on the same device and the same ids."""
    profile = proof.profile
    try:
        import transformers
    except ImportError:
        raise SkipPart("transformers is not installed (pip install transformers)") from None
    sizes = profile.logits_model
    hf_config = gpt2_config(transformers, **sizes)
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if "ln" in name or name.endswith("bias"):
                param.normal_(0.0, 0.5)
    with tempfile.TemporaryDirectory() as directory:
        reference.save_pretrained(directory)
        ours = GPT.from_pretrained(directory).eval()
    device = torch.device(profile.device)
    reference, ours = reference.to(device), ours.to(device)
    batch, block = profile.logits_batch
    ids = torch.randint(sizes["vocab_size"], (batch, block),
                        generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad(), float32_matmuls("highest"):
        difference = (ours(ids)[0] - reference(input_ids=ids).logits).abs().max().item()
    section["figures"].update(
        model=f"random GPT-2, {sizes['n_layer']} layers, width {sizes['n_embd']}, vocab "
              f"{sizes['vocab_size']}, ids {batch} x {block}",
        device=str(device), max_abs_diff=difference, tolerance=profile.logits_tolerance,
        passed=difference <= profile.logits_tolerance)
    del reference, ours
    free_memory(device)


class ShakespeareRun:
    """Phase 7's pieces on its preset: the character tokenizer, GPT, AdamW groups, lr schedule,
    clipping and fixed-batch evaluation; each row of ``rows`` is stamped with wall minutes."""

    def __init__(self, config: TrainConfig, device: str) -> None:
        try:
            text = load_corpus("tinyshakespeare", download=False)
        except CorpusNotFoundError as error:
            raise SkipPart(str(error)) from None
        self.config = config
        self.data = TokenData.from_text(text, build_tokenizer(config.tokenizer, text),
                                        config.block_size)
        self.runtime = pick_runtime(device, config.dtype, config.compile)
        torch.manual_seed(config.seed)
        self.model = GPT(config.model_config(self.data.tokenizer.vocab_size)).to(
            self.runtime.device)
        self.optimizer = make_optimizer(self.model, config, self.runtime.device)
        self.scaler = self.runtime.grad_scaler()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.named_params = list(self.model.named_parameters())
        self.began = time.monotonic()
        self.rows: list[dict] = []
        self.eval_seconds = self.step_seconds = 0.0

    def minutes(self) -> float:
        return (time.monotonic() - self.began) / 60

    def evaluate(self, step: int) -> dict:
        start = time.monotonic()
        losses = estimate_loss(self.model, self.data, self.config, self.runtime)
        self.eval_seconds = time.monotonic() - start
        self.rows.append({"minutes": self.minutes(), "step": step, "train_loss": losses["train"],
                          "val_loss": losses["val"]})
        return self.rows[-1]

    def step(self, step: int) -> None:
        c, start = self.config, time.perf_counter()
        set_learning_rate(self.optimizer, lr_at(step, c))
        batches = [get_batch(self.data.train, c.batch_size, c.block_size, self.generator,
                             self.runtime.device) for _ in range(c.grad_accum)]
        loss = accumulate_gradients(self.model, batches, self.runtime, self.scaler)
        self.scaler.unscale_(self.optimizer)
        clip_gradients(self.named_params, c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_seconds += time.perf_counter() - start
        if step % 10 == 0:
            self.rows.append({"minutes": self.minutes(), "step": step, "loss": loss})


def shakespeare(section: dict, deadline: float, proof: ProofRun) -> None:
    """The shakespeare-char-gpu preset for as many steps as the budget allows, keeping back
    time for the last evaluation: the validation loss reached, and the loss per minute."""
    c = proof.profile.shakespeare
    run = ShakespeareRun(c, proof.profile.device)
    steps = 0
    with progress(range(c.max_iters), "3. shakespeare") as bar:
        for step in bar:
            if step % c.eval_interval == 0:
                run.evaluate(step)
            if time.monotonic() + 1.5 * run.eval_seconds > deadline:
                mark(section, "cut", f"cut at {step} steps: budget")
                break
            run.step(step)
            steps = step + 1
    last = run.rows[-1]
    if last["step"] != steps or "val_loss" not in last:
        last = run.evaluate(steps)
    plot = plot_curves(run.rows, proof.out / "shakespeare_loss.png", x="minutes",
                       ys=["loss", "train_loss", "val_loss"],
                       hline=(NANOGPT_VAL_LOSS, "nanoGPT, 5000 steps"),
                       title=f"shakespeare-char-gpu on {run.runtime.device} "
                             f"({proof.profile.name} profile)")
    section["curve"] = run.rows
    section["figures"].update(
        model=f"{c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, context {c.block_size}, "
              f"batch {c.batch_size}, dropout {c.dropout}, "
              f"{run.runtime.autocast_dtype or 'float32'}",
        steps=f"{steps} of {c.max_iters}", minutes=round(run.minutes(), 2),
        train_loss=round(last["train_loss"], 4), val_loss=round(last["val_loss"], 4),
        nanogpt_val_loss=NANOGPT_VAL_LOSS, plot=plot.name)
    if steps:
        section["figures"]["tokens_per_s"] = round(
            steps * c.batch_size * c.grad_accum * c.block_size / run.step_seconds)
    if proof.profile.name == "cuda":
        section["figures"]["val_minus_nanogpt"] = round(last["val_loss"] - NANOGPT_VAL_LOSS, 4)
    else:
        section["missing"]["val_minus_nanogpt"] = "the CPU profile's toy model is not comparable"


def report_section(report: dict, name: str) -> dict:
    return next((s for s in report["sections"] if s["name"] == name), new_section(name))


PARTS = (("throughput_ours", throughput_ours), ("loss_curve", loss_curve),
         ("pretrained_logits", pretrained_logits),
         ("throughput_transformers", throughput_transformers), ("shakespeare", shakespeare))


def run_part(proof: ProofRun, name: str, part, deadline: float, debug: bool) -> None:
    """Run one part into its section: "skipped" with the reason when it cannot run, "failed"
    with the error (traceback on stderr) when it breaks, so that the later parts still run."""
    section = new_section(name)
    began = time.monotonic()
    try:
        if began >= deadline:
            raise SkipPart("no budget left")
        part(section, deadline, proof)
    except SkipPart as reason:
        mark(section, "skipped", str(reason))
    except torch.OutOfMemoryError as error:
        mark(section, "skipped", f"out of memory: {first_line(error)}")
    except Exception as error:
        if debug:
            raise
        traceback.print_exc()
        mark(section, "failed", f"{type(error).__name__}: {first_line(error, 300)}")
    section["seconds"] = round(time.monotonic() - began, 1)
    proof.report["sections"].append(complete(section))
    free_memory(torch.device(proof.profile.device))


def run_proof(profile: ProofProfile, out: Path, budget_s: float, *, debug: bool = False) -> dict:
    """Every part in turn, each within its share of ``budget_s`` and the whole budget; the
    report is rewritten after each."""
    if profile.threads:
        torch.set_num_threads(profile.threads)
    began = time.monotonic()
    end = began + budget_s
    report = {"profile": profile.name, "budget_s": budget_s, "elapsed_s": 0.0,
              "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
              "sections": [complete(describe_machine(profile.name))]}
    write_report(report, out)
    proof = ProofRun(profile, report, out)
    for name, part in PARTS:
        deadline = min(time.monotonic() + profile.shares[name] * budget_s, end)
        run_part(proof, name, part, deadline, debug)
        report["elapsed_s"] = round(time.monotonic() - began, 1)
        write_report(report, out)
    return report


def proof_passed(report: dict) -> bool:
    """No part failed and every check that ran is within its tolerance."""
    return all(s["status"] != "failed" and s["figures"].get("passed", True)
               for s in report["sections"])


def choose_profile(name: str) -> ProofProfile:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--profile cuda needs a CUDA GPU, and torch {torch.__version__} sees "
                         f"none; use --profile cpu (or auto) for the CPU version")
    return PROFILES[name]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m phase_08_train_124m.gpu_proof",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", type=Path, default=Path("runs/phase_08/gpu_proof"),
                        help="where gpu_proof.json, gpu_proof.md and the plot go")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="the whole proof's time budget in seconds (default 480)")
    parser.add_argument("--profile", choices=("auto", "cuda", "cpu"), default="auto",
                        help="cuda: the real sizes; cpu: the tiny version (auto: cuda if present)")
    parser.add_argument("--debug", action="store_true",
                        help="raise a part's error with its traceback instead of recording it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not (args.budget_s > 0 and math.isfinite(args.budget_s)):
            raise ValueError(f"--budget-s must be a positive number of seconds, got "
                             f"{args.budget_s}")
        profile = choose_profile(args.profile)
        args.out.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers must never reach for a network
    report = run_proof(profile, args.out, args.budget_s, debug=args.debug)
    print_table(report, args.out)
    return 0 if proof_passed(report) else 1


if __name__ == "__main__":
    sys.exit(main())
