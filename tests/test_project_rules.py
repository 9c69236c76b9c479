import re
import subprocess
import sys
from pathlib import Path

from tests.project_rules import (
    ROOT,
    backward_functions,
    backwards_without_a_pointer,
    broken_pointers,
    defined_names,
    import_violations,
    note_files,
    phase_dirs,
)


def test_no_phase_imports_a_later_phase_and_numpy_phases_do_not_import_torch():
    assert import_violations() == []


def test_import_rule_catches_planted_violations(tmp_path):
    early = tmp_path / "phase_01_nn"
    early.mkdir()
    (early / "ok.py").write_text("import numpy\nfrom phase_00_math.gradcheck import x\n")
    (early / "bad.py").write_text(
        "from phase_04_attention.mha import mha_forward\nimport torch.nn as nn\n"
        "from tfs.grading import grade\n")
    late = tmp_path / "phase_07_gpt"
    late.mkdir()
    (late / "fine.py").write_text("import torch\nfrom phase_05_transformer_numpy import gpt\n")
    assert import_violations(tmp_path) == [
        "phase_01_nn/bad.py:1 imports phase_04_attention, a later phase",
        "phase_01_nn/bad.py:2 imports torch, but phases 0-5 are NumPy only",
        "phase_01_nn/bad.py:3 imports tfs, the course tooling, which only imports phases",
    ]


def test_every_notes_pointer_resolves():
    assert note_files(), "no notes found"
    assert broken_pointers() == []


def test_pointer_check_catches_bad_pointers(tmp_path):
    phase = tmp_path / "phase_00_math"
    (phase / "notes").mkdir(parents=True)
    (phase / "ops.py").write_text(
        "def good():\n    pass\n\nclass Box:\n    def open(self):\n        pass\n")
    (phase / "notes" / "01.md").write_text(
        "See `phase_00_math/ops.py::good`, `phase_00_math/ops.py::Box.open`,\n"
        "`phase_00_math/ops.py::missing` and `phase_00_math/gone.py::good`.\n")
    assert broken_pointers(tmp_path) == [
        "phase_00_math/notes/01.md:2: phase_00_math/ops.py::missing (no such definition)",
        "phase_00_math/notes/01.md:2: phase_00_math/gone.py::good (no such file)",
    ]


def test_defined_names_sees_functions_classes_methods_and_constants():
    names = defined_names("X = 1\ndef f():\n    pass\nclass C:\n    def m(self):\n        pass\n")
    assert {"X", "f", "C", "C.m"} <= names


def test_every_phase_is_a_package_with_notes_and_tests():
    for phase in phase_dirs():
        assert (phase / "__init__.py").is_file(), phase.name
        assert list((phase / "notes").glob("*.md")), f"{phase.name} has no notes"
        assert list((phase / "tests").glob("test_*.py")), f"{phase.name} has no tests"


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^\s*(pytest\b[^\n]*)$", readme, flags=re.MULTILINE)
    assert commands, "README.md gives no pytest command"
    return commands[0].strip()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_test_command() in ci


def test_readme_names_every_phase_that_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for phase in phase_dirs():
        assert phase.name in readme, phase.name


def test_a_phase_marker_selects_exactly_that_phase():
    phase = phase_dirs()[-1].name
    number = phase[len("phase_"):len("phase_") + 2]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", f"phase_{number}"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected, result.stdout + result.stderr
    assert {Path(line.split("::")[0]).parts[0] for line in collected} == {phase}


def _phases(numbers) -> list:
    return [phase for phase in phase_dirs() if int(phase.name[6:8]) in numbers]


def test_every_backward_of_phases_0_to_5_is_pointed_to_from_the_notes():
    phases = _phases(range(6))
    assert len(phases) == 6
    assert backwards_without_a_pointer(phases) == []


def test_every_backward_of_phase_9_is_pointed_to_from_the_notes():
    phases = _phases({9})
    assert phases, "phase 9 not found"
    assert backward_functions(phases[0]), "no backward found in phase 9"
    assert backwards_without_a_pointer(phases) == []


def test_backward_pointer_check_catches_a_backward_without_a_pointer(tmp_path):
    phase = tmp_path / "phase_04_attention"
    (phase / "notes").mkdir(parents=True)
    (phase / "tests").mkdir()
    (phase / "ops.py").write_text(
        "def scale_forward(x):\n    pass\n\ndef scale_backward(d, c):\n    pass\n\n"
        "def shift_backward(d, c):\n    pass\n\ndef flash_backward_tiles(q):\n    pass\n\n"
        "class Net:\n    def backward(self, d):\n        pass\n\n"
        "    def _score_backward(self, d, c):\n        pass\n")
    (phase / "tests" / "test_ops.py").write_text("def fake_backward(d, c):\n    pass\n")
    (phase / "notes" / "01.md").write_text(
        "Derived for `phase_04_attention/ops.py::scale_backward`.\n")
    assert backwards_without_a_pointer([phase], tmp_path) == [
        "phase_04_attention/ops.py::Net._score_backward",
        "phase_04_attention/ops.py::flash_backward_tiles",
        "phase_04_attention/ops.py::shift_backward",
    ]
