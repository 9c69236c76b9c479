"""The course tooling (``tfs``): every backward is an exercise, stubs come from the source and
fail, the reference passes, planted mistakes fail with a message that teaches, and a learner's
work is never overwritten."""

import ast
import importlib
import json
import re

import pytest

from tfs import catalog, workspace
from tfs.cli import main
from tfs.grading import Failure, cases_for, grade, swapped_in
from tfs.stubs import stub_source

FEW = 3  # hypothesis draws per oracle in these tests: enough to pass the reference and to fail


@pytest.fixture(autouse=True)
def fresh_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("TFS_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def _write(exercise, text):
    path = workspace.exercise_file(exercise)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _reference(exercise) -> str:
    return exercise.source.read_text(encoding="utf-8")


def _planted(name, old, new):
    exercise = catalog.find(name)
    source = _reference(exercise)
    assert source.count(old) == 1, f"the plant {old!r} no longer matches the source"
    _write(exercise, source.replace(old, new))
    return exercise


# ------------------------------------------------------------------------------------ coverage

def test_every_backward_is_an_exercise_that_can_be_graded():
    backwards = catalog.backward_functions()
    assert len(backwards) >= 45
    singles = {f"{e.module}.{e.targets[0]}": e for e in catalog.exercises()
               if e.kind == "backward"}
    assert sorted(singles) == sorted(backwards)
    for op, exercise in singles.items():
        assert cases_for(exercise, exercise.targets[0]), f"{op} has no parity case to grade it"


def test_the_larger_exercises_are_there():
    kinds = {e.name: e.kind for e in catalog.exercises()}
    for name in ("mlp_training_step", "lstm_step", "lstm_bptt", "bpe_merge_loop",
                 "causal_self_attention", "transformer_block"):
        assert name in kinds


def test_discovery_finds_a_new_backward_and_skips_torch_modules_and_tests(tmp_path):
    phase = tmp_path / "phase_00_math"
    (phase / "tests").mkdir(parents=True)
    (phase / "cube.py").write_text("def cube_forward(x):\n    pass\n\n"
                                   "def cube_backward(d, c):\n    pass\n\n"
                                   "def _helper_backward(d):\n    pass\n")
    (phase / "twin.py").write_text("import torch\n\ndef twin_backward(d, c):\n    pass\n")
    (phase / "tests" / "test_cube.py").write_text("def fake_backward(d, c):\n    pass\n")
    assert catalog.backward_functions(("phase_00_math",), tmp_path) == [
        "phase_00_math.cube.cube_backward"]


def test_learning_order_follows_the_phases_and_every_exercise_has_notes():
    exercises = catalog.exercises()
    assert [e.phase for e in exercises] == sorted(e.phase for e in exercises)
    for exercise in exercises:
        assert catalog.notes_pointer(exercise), exercise.name


# --------------------------------------------------------------------------------------- stubs

@pytest.mark.parametrize("exercise", catalog.exercises(), ids=lambda e: e.qualified)
def test_stub_keeps_the_module_and_replaces_only_the_targets(exercise):
    stub = ast.parse(stub_source(exercise))
    source = ast.parse(_reference(exercise))
    kept = {ast.dump(node) for node in stub.body}
    top_targets = {t.split(".")[0] for t in exercise.targets}
    for node in source.body:
        if getattr(node, "name", None) not in top_targets:
            assert ast.dump(node) in kept, ast.unparse(node)[:80]
    text = stub_source(exercise)
    for target in exercise.targets:
        assert f"TODO (tfs exercise {exercise.name}): write {target}." in text
    assert text.count("raise NotImplementedError(") >= len(exercise.targets)


def test_a_backward_stub_states_shapes_cache_returns_and_notes_but_not_the_answer():
    text = stub_source(catalog.find("linear_backward"))
    todo = text[text.index("def linear_backward"):text.index("class Linear")]
    assert "x: (..., D), w: (D, M), b: (M,) or None -> y: (..., M)" in todo
    assert "(x, w, b is not None)" in todo
    assert "(dx, dw, db)" in todo
    assert "phase_01_nn/notes/02_backpropagation.md, section 2.3" in todo
    assert "dout W^T" not in todo and "x2.T @ d2" not in todo


@pytest.mark.parametrize("exercise", catalog.exercises(), ids=lambda e: e.qualified)
def test_every_stub_fails_its_check(exercise):
    workspace.start(exercise)
    with pytest.raises(Failure, match="is not written yet"):
        grade(exercise, workspace.load(exercise), FEW)


# ------------------------------------------------------------------------------------ grading

@pytest.mark.parametrize("name", ["softmax_backward", "linear_backward", "mlp_training_step",
                                  "lstm_bptt", "bpe_merge_loop", "causal_self_attention",
                                  "transformer_block", "rope_backward"])
def test_the_reference_passes(name):
    exercise = catalog.find(name)
    _write(exercise, _reference(exercise))
    passed = grade(exercise, workspace.load(exercise), FEW)
    assert passed


PLANTS = {
    "missing factor": ("linear_backward", "    dw = x2.T @ d2\n", "    dw = 0.5 * (x2.T @ d2)\n",
                       r"linear_backward, the gradient of 'w':\n  your gradient is 0.5x the true "
                       r"one: a missing factor of 2\?"),
    "transposed": ("multi_head_self_attention_backward",
                   "    dw_o = _merge_heads(attention.y).reshape(-1, c).T @ dy2\n",
                   "    dw_o = (_merge_heads(attention.y).reshape(-1, c).T @ dy2).T\n",
                   r"multi_head_self_attention_backward, the gradient of 'w_o':\n  your "
                   r"gradient equals the true one transposed"),
    "wrong sign": ("tanh_backward", "    return (dout * (1.0 - t * t),)\n",
                   "    return (-dout * (1.0 - t * t),)\n",
                   r"tanh_backward, the gradient of 'x':\n  your gradient is -1x the true one: "
                   r"the sign is flipped"),
    "wrong shape": ("linear_backward",
                    "    db = d2.sum(axis=0, dtype=np.float64).astype(d2.dtype)"
                    " if has_bias else None\n",
                    "    db = d2 if has_bias else None\n",
                    r"linear_backward: the gradient of 'b' has shape \(\d+, \d+\), but 'b' has "
                    r"shape \(\d+,\)"),
    "off-by-one mask": ("causal_self_attention",
                        "heads, attention = scaled_dot_product_attention_forward(q, k, v, "
                        "mask=mask, causal=causal,",
                        "heads, attention = scaled_dot_product_attention_forward(\n        q, k, "
                        "v, mask=np.tril(np.ones((t, t), dtype=bool), -1), causal=False,",
                        r"torch parity, multi-head self-attention: .*\n  your forward's output "
                        r"differs from torch's"),
}


@pytest.mark.parametrize("plant", PLANTS, ids=list(PLANTS))
def test_a_planted_mistake_fails_with_a_message_that_teaches(plant):
    name, old, new, expected = PLANTS[plant]
    exercise = _planted(name, old, new)
    with pytest.raises(Failure) as failure:
        grade(exercise, workspace.load(exercise), 8)
    message = str(failure.value)
    assert re.search(expected, message), message
    assert "Traceback" not in message and "def check_gradients" not in message
    if plant not in ("wrong shape", "off-by-one mask"):
        assert "yours         numeric" in message  # values side by side


def test_an_error_in_their_code_names_their_file_and_line():
    exercise = _planted("softmax_backward", "    p, axis = cache\n", "    p, axis, oops = cache\n")
    with pytest.raises(Failure, match=r"your code raised ValueError: .*softmax_backward.py, line "
                                      r"\d+: `p, axis, oops = cache`"):
        grade(exercise, workspace.load(exercise), FEW)


def test_a_backward_that_breaks_training_fails_the_model_check():
    # Layer norm's gradient with its sign flipped: the model check alone (called directly here)
    # must notice that the GPT no longer learns.
    from tfs import grading

    exercise = _planted("layer_norm_backward",
                        "def layer_norm_backward(dout: np.ndarray, cache):\n",
                        "def layer_norm_backward(dout: np.ndarray, cache):\n"
                        "    return _layer_norm_backward(-dout, cache)\n\n\n"
                        "def _layer_norm_backward(dout: np.ndarray, cache):\n")
    with pytest.raises(Failure, match="tiny GPT does not learn with your layer_norm_backward"):
        grading.gpt_learns(exercise, workspace.load(exercise))


# ---------------------------------------------------------------------------------- workspace

def test_start_never_clobbers_the_learners_work(fresh_workspace):
    exercise = catalog.find("relu_backward")
    path, what = workspace.start(exercise)
    assert what == "created"
    assert workspace.start(exercise)[1] == "already there, untouched"
    path.write_text("my work\n")
    assert workspace.start(exercise)[1].startswith("kept")
    assert path.read_text() == "my work\n"
    workspace.start(exercise, force=True)
    assert path.with_name(path.name + ".bak").read_text() == "my work\n"
    assert "raise NotImplementedError" in path.read_text()
    path.write_text("second try\n")
    workspace.start(exercise, force=True)
    assert path.with_name(path.name + ".bak").read_text() == "my work\n"
    assert path.with_name(path.name + ".bak2").read_text() == "second try\n"


def test_cli_loop_start_fail_fix_pass_and_progress(fresh_workspace, capsys):
    assert main(["start", "relu_backward"]) == 0
    assert main(["check", "relu_backward", "--examples", str(FEW)]) == 1
    assert "FAIL relu_backward" in capsys.readouterr().out
    exercise = catalog.find("relu_backward")
    _write(exercise, _reference(exercise))
    assert main(["check", "relu_backward", "--examples", str(FEW)]) == 0
    assert "PASS relu_backward" in capsys.readouterr().out
    progress = json.loads((fresh_workspace / "progress.json").read_text())
    assert progress["phase_01_nn.relu_backward"]["status"] == "passed"
    assert main(["progress"]) == 0
    assert "phase_01_nn" in capsys.readouterr().out
    assert main(["exercises", "phase_01"]) == 0
    listing = capsys.readouterr().out
    assert "relu_backward" in listing and "passed" in listing and "not started" in listing


def test_cli_errors_are_one_line_and_exit_2(capsys):
    assert main(["check", "linear_backward"]) == 2
    assert capsys.readouterr().err == ("error: linear_backward is not started; run `tfs start "
                                       "linear_backward` first\n")
    assert main(["start", "no_such_op"]) == 2
    assert capsys.readouterr().err.startswith("error: no exercise called 'no_such_op'")
    assert main(["check", "feed_forward_backward"]) == 2
    assert "phase_04.feed_forward_backward" in capsys.readouterr().err


def test_solution_asks_first_and_then_shows_the_reference(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["solution", "tanh_backward"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert main(["solution", "tanh_backward", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "def tanh_backward(dout, t):" in out and "return (dout * (1.0 - t * t),)" in out
    assert "phase_01_nn/notes/" in out


def test_swapped_in_reaches_every_importer_and_is_undone():
    import phase_01_nn.linear as linear
    import phase_05_transformer_numpy.feed_forward as feed_forward

    exercise = catalog.find("linear_backward")
    _write(exercise, _reference(exercise))
    mine = workspace.load(exercise)
    original = linear.linear_backward
    with swapped_in([(exercise, mine)]):
        assert linear.linear_backward is mine.linear_backward
        assert feed_forward.linear_backward is mine.linear_backward
    assert linear.linear_backward is original and feed_forward.linear_backward is original


def test_swapped_in_switches_the_fused_fast_paths_off_so_the_learners_code_runs():
    """With a fast path on, the GPT's feed-forward would run phase 0's fused GELU loops and
    never call a learner's gelu_backward; the tiny GPT of the model check must call it."""
    from tfs import grading

    exercise = catalog.find("gelu_backward")
    _write(exercise, _reference(exercise))
    mine = workspace.load(exercise)
    flags = [importlib.import_module(name) for name in grading.FAST_PATH_MODULES]
    assert all(module.FUSED for module in flags)
    with swapped_in([(exercise, mine)]):
        assert not any(module.FUSED for module in flags)
    assert all(module.FUSED for module in flags)
    assert "learns with it" in grading.gpt_learns(exercise, mine)


def test_run_puts_the_passed_exercises_into_a_demo(capsys):
    exercise = catalog.find("linear_backward")
    _write(exercise, _reference(exercise))
    workspace.record(exercise, True, 0.0, "passed")
    with pytest.raises(SystemExit) as done:
        main(["run", "phase_05_transformer_numpy.sample", "--help"])
    assert done.value.code == 0
    captured = capsys.readouterr()
    assert "tfs run: with your passed exercises: linear_backward" in captured.err
    assert "usage:" in captured.out
    assert main(["run", "phase_05_transformer_numpy.nothing_here"]) == 2
    assert capsys.readouterr().err.startswith("error: no module")


def test_a_file_that_no_longer_loads_fails_with_the_way_out(capsys):
    exercise = catalog.find("relu_backward")
    _write(exercise, "from phase_01_nn.moved_away import relu_forward\n")
    assert main(["check", "relu_backward"]) == 1
    out = capsys.readouterr().out
    assert "does not load (ModuleNotFoundError" in out
    assert "`tfs start relu_backward --force` writes a fresh stub" in out


def test_a_wrong_number_of_gradients_is_a_failure_not_a_traceback():
    exercise = _planted("tanh_backward", "    return (dout * (1.0 - t * t),)\n",
                        "    return (dout * (1.0 - t * t), dout)\n")
    with pytest.raises(Failure, match="returned 2 gradients for 1 array"):
        grade(exercise, workspace.load(exercise), FEW)


def test_an_op_name_finds_its_backward_and_exact_names_win():
    assert catalog.find("rope").name == "rope_backward"
    assert catalog.find("phase_01_nn.linear").name == "linear_backward"
    assert catalog.find("lstm_step").kind == "pair"  # the larger exercise, not lstm_step_backward
    with pytest.raises(LookupError, match="several phases; say which: phase_04.feed_forward, "
                                          "phase_05.feed_forward"):
        catalog.find("feed_forward")
    assert catalog.find("phase_05.feed_forward").phase == "phase_05_transformer_numpy"
    assert catalog.find("phase_04_attention.feed_forward_backward").phase == "phase_04_attention"


def test_every_tfs_command_in_the_docs_names_a_real_exercise():
    documents = [*catalog.ROOT.glob("phase_*/notes/*.md"), catalog.ROOT / "README.md",
                 catalog.ROOT / "ROADMAP.md"]
    named = {match for path in documents for match in re.findall(
        r"`tfs (?:start|check|solution|exercises) ([\w.]+)", path.read_text(encoding="utf-8"))}
    assert named
    for name in named - {"NAME", "PHASE"}:
        assert catalog.select(name), name


def test_a_stub_names_a_check_command_that_works():
    text = stub_source(catalog.find("phase_05.feed_forward"))
    assert "`tfs check phase_05.feed_forward_backward`" in text
    assert catalog.find("phase_05.feed_forward_backward").phase == "phase_05_transformer_numpy"
    assert "`tfs check linear_backward`" in stub_source(catalog.find("linear"))
