"""The GPU proof's record: one section per measurement, every figure either measured or missing
with a reason, written as JSON and as one Markdown table after every section.

A section is a dict: ``title``, ``status`` ("done", "cut", "skipped" or "failed"), ``reason``
(why it is not "done"), ``seconds`` it took, ``figures`` (name -> value) and ``missing`` (name
-> why that figure has no value), plus any curves it kept (lists, in the JSON only).
``FIGURES`` lists what each section must report; ``complete`` gives every figure that was not
measured a reason, so a reader of the table never meets a blank.
Notes: ``phase_08_train_124m/notes/03_gpu_proof.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

JSON_FILE = "gpu_proof.json"
MARKDOWN_FILE = "gpu_proof.md"

# section -> ((figure, label), ...), in the order of the table.
FIGURES: dict[str, tuple[tuple[str, str], ...]] = {
    "machine": (("device", "device"), ("driver", "NVIDIA driver"), ("cuda", "CUDA (torch build)"),
                ("torch", "torch"), ("transformers", "transformers"), ("python", "Python"),
                ("profile", "profile")),
    "throughput_ours": (
        ("model", "model"), ("micro_batch", "micro-batch (largest that fits)"),
        ("tried", "micro-batches tried"), ("precision", "precision, compile, attention"),
        ("first_step_s", "first step (s), compiling included"), ("timed_steps", "timed steps"),
        ("ms_per_step", "ms per step (median)"), ("tokens_per_s", "tokens/s"),
        ("peak_tflops", "dense bf16 peak (TFLOP/s)"), ("mfu", "MFU"),
        ("peak_memory_gib", "peak memory (GiB)")),
    "throughput_transformers": (
        ("micro_batch", "micro-batch"), ("precision", "precision, compile, attention"),
        ("first_step_s", "first step (s), compiling included"), ("timed_steps", "timed steps"),
        ("ms_per_step", "ms per step (median)"), ("tokens_per_s", "tokens/s"), ("mfu", "MFU"),
        ("peak_memory_gib", "peak memory (GiB)"), ("ratio", "tokens/s, ours / transformers")),
    "loss_curve": (
        ("steps", "steps compared"), ("fast", "fast run (part 1's)"), ("reference", "reference"),
        ("first_loss", "step 0 loss: fast / reference"),
        ("last_loss", "last step loss: fast / reference"),
        ("first_rel_diff", "step 0 relative difference"),
        ("max_abs_diff", "largest absolute difference (nats)"),
        ("max_rel_diff", "largest relative difference"),
        ("tolerance", "tolerance (relative)"), ("passed", "within tolerance")),
    "pretrained_logits": (
        ("model", "model"), ("device", "device"), ("max_abs_diff", "largest absolute difference"),
        ("tolerance", "tolerance"), ("passed", "within tolerance")),
    "shakespeare": (
        ("model", "model"), ("steps", "steps (of max_iters)"), ("minutes", "wall time (min)"),
        ("tokens_per_s", "tokens/s (training steps)"), ("train_loss", "train loss at the end"),
        ("val_loss", "val loss at the end"), ("nanogpt_val_loss", "nanoGPT after 5000 steps"),
        ("val_minus_nanogpt", "val loss - nanoGPT's"), ("plot", "loss-per-minute plot")),
}

PART_OF = {"machine": "4. machine", "throughput_ours": "1. 124M throughput, ours",
           "throughput_transformers": "1. 124M throughput, transformers",
           "loss_curve": "2. bf16 + compile vs float32 eager",
           "pretrained_logits": "2. from_pretrained logits vs transformers",
           "shakespeare": "3. shakespeare-char-gpu"}


def new_section(name: str) -> dict:
    return {"name": name, "title": PART_OF[name], "status": "done", "reason": None,
            "seconds": None, "figures": {}, "missing": {}}


def mark(section: dict, status: str, reason: str) -> dict:
    """Set a section's status ("cut", "skipped", "failed") and why."""
    section["status"], section["reason"] = status, reason
    return section


def complete(section: dict) -> dict:
    """Give every expected figure without a value a reason: its own, or the section's."""
    fallback = (f"{section['status']}: {section['reason']}" if section["reason"]
                else "not measured")
    for name, _ in FIGURES[section["name"]]:
        if section["figures"].get(name) is None:
            section["figures"].pop(name, None)
            section["missing"].setdefault(name, fallback)
    return section


def describe_machine(profile: str) -> dict:
    """Device, driver, CUDA, torch and transformers versions; a reason for each one absent."""
    section = new_section("machine")
    figures, missing = section["figures"], section["missing"]
    figures.update(torch=torch.__version__, python=platform.python_version(), profile=profile)
    try:
        import transformers
        figures["transformers"] = transformers.__version__
    except ImportError:
        missing["transformers"] = "not installed (pip install transformers)"
    if torch.version.cuda is None:
        missing["cuda"] = f"this torch ({torch.__version__}) is built without CUDA"
    else:
        figures["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        figures["device"] = (f"{props.name} ({props.total_memory / 2**30:.0f} GiB, "
                             f"{props.multi_processor_count} SMs, sm_{props.major}{props.minor})")
        figures["driver"] = nvidia_driver_version()
        if figures["driver"] is None:
            missing["driver"] = "neither /proc/driver/nvidia/version nor nvidia-smi answered"
    else:
        figures["device"] = f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
        missing["driver"] = "no CUDA device"
    return section


def nvidia_driver_version(module_file: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA driver's version: from the kernel module's file, else from nvidia-smi (a
    sandboxed machine may hide /proc/driver); None when neither answers."""
    try:
        words = module_file.read_text(encoding="utf-8").split()
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
        if "Module" in words and words.index("Module") + 1 < len(words):
            return words[words.index("Module") + 1]
    except OSError:
        pass
    try:
        answer = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                 "--format=csv,noheader"], capture_output=True, text=True,
                                timeout=20, check=True)
        return answer.stdout.strip().splitlines()[0] or None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def format_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: dict) -> str:
    """The whole proof as one table: part, figure, value (or why it is missing)."""
    not_done = [f"{s['title']}: {s['status']}, {s['reason']}" for s in report["sections"]
                if s["status"] != "done"]
    lines = [f"# GPU proof ({report['profile']} profile)", "",
             f"Started {report['started']}, budget {report['budget_s']:.0f} s, "
             f"{report['elapsed_s']:.0f} s so far. Skipped or cut: "
             + ("; ".join(not_done) if not_done else "nothing") + ".", "",
             "| part | figure | value |", "| --- | --- | --- |"]
    for section in report["sections"]:
        status = section["status"] + (f": {section['reason']}" if section["reason"] else "")
        seconds = f" ({section['seconds']:.1f} s)" if section["seconds"] is not None else ""
        lines.append(f"| {section['title']} | status | {cell(status)}{seconds} |")
        for name, label in FIGURES[section["name"]]:
            value = (format_value(section["figures"][name]) if name in section["figures"]
                     else f"— ({section['missing'].get(name, 'not measured')})")
            lines.append(f"|  | {label} | {cell(value)} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> None:
    """JSON and Markdown, each written to a temporary file and renamed into place, so a kill
    mid-write leaves the previous complete version."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in ((JSON_FILE, json.dumps(report, indent=2) + "\n"),
                       (MARKDOWN_FILE, markdown(report))):
        partial = out / (name + ".part")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out / name)


def print_table(report: dict, out: Path) -> None:
    print(markdown(report), file=sys.stdout)
    print(f"written: {out / MARKDOWN_FILE} and {out / JSON_FILE}")
