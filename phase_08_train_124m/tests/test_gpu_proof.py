"""The GPU proof's CPU version, run whole: every figure of the table is a value or a reason."""

import json

import pytest
import torch

from phase_08_train_124m import gpu_proof
from phase_08_train_124m.proof_report import (
    FIGURES,
    JSON_FILE,
    MARKDOWN_FILE,
    complete,
    mark,
    nvidia_driver_version,
)


@pytest.fixture(scope="module")
def proof(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_proof")
    code = gpu_proof.main(["--profile", "cpu", "--out", str(out)])
    return code, json.loads((out / JSON_FILE).read_text()), (out / MARKDOWN_FILE).read_text(), out


def _section(report, name):
    return next(s for s in report["sections"] if s["name"] == name)


def test_every_figure_is_measured_or_has_a_reason(proof):
    _, report, table, _ = proof
    assert [s["name"] for s in report["sections"]] == ["machine", *(n for n, _ in gpu_proof.PARTS)]
    for section in report["sections"]:
        for name, label in FIGURES[section["name"]]:
            has_value = section["figures"].get(name) is not None
            assert has_value or section["missing"].get(name), (section["name"], name)
            assert f"| {label} |" in table


def test_the_cpu_version_runs_every_part(proof):
    code, report, _, out = proof
    assert code == 0
    assert all(s["status"] == "done" for s in report["sections"]), report["sections"]
    ours = _section(report, "throughput_ours")["figures"]
    theirs = _section(report, "throughput_transformers")["figures"]
    assert ours["tokens_per_s"] > 0 and theirs["tokens_per_s"] > 0
    assert theirs["ratio"] == pytest.approx(ours["tokens_per_s"] / theirs["tokens_per_s"], 1e-2)
    curve = _section(report, "loss_curve")
    steps = gpu_proof.PROFILES["cpu"].warmup_steps + gpu_proof.PROFILES["cpu"].timed_steps
    assert curve["figures"]["steps"] == steps and curve["figures"]["passed"] is True
    assert curve["losses"]["fast"] != curve["losses"]["reference"]  # two precisions, not one
    assert _section(report, "pretrained_logits")["figures"]["passed"] is True
    shakespeare = _section(report, "shakespeare")
    assert shakespeare["figures"]["val_loss"] < 4.17  # below uniform over 65 characters
    assert (out / "shakespeare_loss.png").stat().st_size > 0
    assert any("val_loss" in row for row in shakespeare["curve"])


def test_a_spent_budget_cuts_or_skips_every_part_and_still_writes_the_table(tmp_path):
    code = gpu_proof.main(["--profile", "cpu", "--out", str(tmp_path), "--budget-s", "0.001"])
    report = json.loads((tmp_path / JSON_FILE).read_text())
    assert code == 0
    for section in report["sections"][1:]:
        assert section["status"] in ("cut", "skipped"), section
        for name, _ in FIGURES[section["name"]]:
            assert section["figures"].get(name) is not None or section["missing"].get(name)


def test_a_part_that_begins_past_its_deadline_is_skipped(tmp_path):
    proof = gpu_proof.ProofRun(gpu_proof.PROFILES["cpu"], {"sections": []}, tmp_path)
    gpu_proof.run_part(proof, "throughput_ours", gpu_proof.throughput_ours, 0.0, debug=False)
    section = proof.report["sections"][0]
    assert (section["status"], section["reason"]) == ("skipped", "no budget left")
    assert section["missing"]["tokens_per_s"] == "skipped: no budget left"


def test_a_run_past_its_deadline_is_cut_after_one_step():
    profile = gpu_proof.PROFILES["cpu"]
    config = profile.model
    runtime = gpu_proof.pick_runtime("cpu", "float32", False)
    torch.manual_seed(0)
    model = gpu_proof.GPT(config.model_config())
    batches = gpu_proof.phrase_batches(4, 2, config.block_size, config.vocab_size)
    run = gpu_proof.train_steps(model, batches, runtime, config, deadline=0.0, desc="cut")
    assert run.cut_at == 1 and len(run.losses) == 1


def test_a_cut_section_reports_why_each_missing_figure_is_missing():
    section = mark(gpu_proof.new_section("throughput_ours"), "cut", "cut at 3 steps: budget")
    section["figures"]["micro_batch"] = 8
    complete(section)
    assert section["figures"] == {"micro_batch": 8}
    assert section["missing"]["mfu"] == "cut: cut at 3 steps: budget"


def test_phrase_batches_repeat_under_a_seed_and_shift_targets_by_one():
    first = gpu_proof.phrase_batches(2, 3, 40, 100)
    again = gpu_proof.phrase_batches(2, 3, 40, 100)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert x.shape == y.shape == (3, 40) and torch.equal(x[:, 1:], y[:, :-1])
        assert int(x.max()) < 100


@pytest.mark.parametrize("argv, message", [
    (["--budget-s", "0"], "--budget-s must be a positive"),
    (["--profile", "cuda"], "--profile cuda needs a CUDA GPU"),
])
def test_bad_options_print_one_error_line(argv, message, capsys, tmp_path):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_proof.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_the_driver_version_is_read_from_the_kernel_module_file(tmp_path):
    module_file = tmp_path / "version"
    module_file.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  "
                           "Tue Oct 14 2025\nGCC version:  gcc version 12.2.0\n")
    assert nvidia_driver_version(module_file) == "580.159.04"


def test_a_part_that_breaks_is_recorded_as_failed_and_fails_the_proof(tmp_path, capsys):
    def broken(section, deadline, proof):
        raise RuntimeError("boom\nsecond line")

    proof = gpu_proof.ProofRun(gpu_proof.PROFILES["cpu"], {"sections": []}, tmp_path)
    gpu_proof.run_part(proof, "loss_curve", broken, 1e12, debug=False)
    section = proof.report["sections"][0]
    assert (section["status"], section["reason"]) == ("failed", "RuntimeError: boom")
    assert "Traceback" in capsys.readouterr().err
    assert not gpu_proof.proof_passed(proof.report)
    with pytest.raises(RuntimeError, match="boom"):
        gpu_proof.run_part(proof, "loss_curve", broken, 1e12, debug=True)


def test_a_check_outside_its_tolerance_fails_the_proof():
    passed = complete(gpu_proof.new_section("pretrained_logits"))
    passed["figures"]["passed"] = True
    failed = complete(gpu_proof.new_section("loss_curve"))
    failed["figures"]["passed"] = False
    assert gpu_proof.proof_passed({"sections": [passed]})
    assert not gpu_proof.proof_passed({"sections": [passed, failed]})


def test_the_cuda_profile_measures_the_real_sizes_within_the_budget():
    cuda = gpu_proof.PROFILES["cuda"]
    model = cuda.model.model_config()
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size) == (12, 12, 768, 1024)
    assert cuda.compile and cuda.micro_batches[0] == 64
    sizes = cuda.micro_batches
    assert all(a == 2 * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert 30 <= cuda.timed_steps <= 50 and cuda.warmup_steps + cuda.timed_steps == 50
    shakespeare = cuda.shakespeare
    assert (shakespeare.n_layer, shakespeare.n_embd, shakespeare.block_size) == (6, 384, 256)
    assert shakespeare.max_iters == 5000 and not shakespeare.save_checkpoints
    for profile in gpu_proof.PROFILES.values():
        assert set(profile.shares) == {name for name, _ in gpu_proof.PARTS}
        assert sum(profile.shares.values()) <= 0.95  # the rest for imports and overruns
