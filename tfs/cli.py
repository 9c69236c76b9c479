"""``tfs``: work through the course. ``tfs exercises``, ``start``, ``check``, ``progress``,
``solution`` and ``run``; ``tfs COMMAND --help`` says more about each."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import runpy
import sys
import time
from collections import Counter

from tfs import catalog, workspace
from tfs.catalog import Exercise
from tfs.workspace import UserError

PASS, FAIL = "PASS", "FAIL"


def _pointer(exercise: Exercise) -> str:
    pointer = catalog.notes_pointer(exercise)
    if not pointer:
        return ""
    return pointer[0] + (f", {pointer[1]}" if pointer[1] else "")


def _select(name: str) -> list[Exercise]:
    try:
        return catalog.select(name)
    except LookupError as error:
        raise UserError(str(error.args[0])) from None


def cmd_exercises(args) -> int:
    progress = workspace.read_progress()
    chosen = catalog.select(args.phase) if args.phase else catalog.exercises()
    phase = None
    for exercise in chosen:
        if exercise.phase != phase:
            phase = exercise.phase
            print(f"\n{phase}")
        size = "" if exercise.kind == "backward" else " (larger)"
        print(f"  {catalog.handle(exercise) + size:<44} {workspace.status(exercise, progress):<12} "
              f"{_pointer(exercise)}")
    print("\n`tfs start NAME` writes one into workspace/; `tfs start PHASE` all of a phase.")
    return 0


def cmd_start(args) -> int:
    for exercise in _select(args.name):
        path, what = workspace.start(exercise, force=args.force)
        print(f"{exercise.name}: {path} {what}")
    print("Edit the TODOs, then `tfs check NAME` (or the phase).")
    return 0


def cmd_check(args) -> int:
    from tfs.grading import Failure, grade  # hypothesis and the phases load only here

    failed = 0
    chosen = _select(args.name)
    waiting = [e for e in chosen if not workspace.exercise_file(e).exists()]
    if len(chosen) == 1 and waiting:
        raise UserError(f"{waiting[0].name} is not started; run `tfs start "
                        f"{catalog.handle(waiting[0])}` first")
    for exercise in chosen:
        if exercise in waiting:
            continue
        started = time.perf_counter()
        try:
            passed = grade(exercise, _loaded(exercise), args.examples)
        except Failure as failure:
            seconds = time.perf_counter() - started
            failed += 1
            message = str(failure)
            workspace.record(exercise, False, seconds, message.splitlines()[0])
            print(f"{FAIL} {exercise.name} ({seconds:.1f} s)\n" + _indent(message))
            continue
        seconds = time.perf_counter() - started
        workspace.record(exercise, True, seconds, passed[0])
        print(f"{PASS} {exercise.name} ({seconds:.1f} s)\n" + _indent("\n".join(passed)))
    if len(chosen) > 1:
        checked = len(chosen) - len(waiting)
        print(f"\n{checked - failed} of {checked} checked passed" + (
            f"; {len(waiting)} not started (`tfs start {args.name}`)" if waiting else ""))
    return 1 if failed else 0


def _loaded(exercise: Exercise):
    """The learner's module; a file that does not load fails its check (in a phase's check the
    others still run)."""
    from tfs.grading import Failure

    try:
        return workspace.load(exercise)
    except UserError as error:
        raise Failure(str(error)) from None


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def cmd_progress(args) -> int:
    progress = workspace.read_progress()
    by_phase: dict[str, Counter] = {}
    for exercise in catalog.exercises():
        by_phase.setdefault(exercise.phase, Counter())[workspace.status(exercise, progress)] += 1
    print(f"{'phase':<28} {'passed':>7} {'failing':>8} {'started':>8} {'to do':>6}")
    for phase, counts in by_phase.items():
        total = sum(counts.values())
        print(f"{phase:<28} {counts['passed']:>3}/{total:<3} {counts['failing']:>8} "
              f"{counts['started']:>8} {counts['not started']:>6}")
    print(f"\nSaved in {workspace.progress_file()} (plain JSON).")
    return 0


def cmd_solution(args) -> int:
    exercise = _select(args.name)
    if len(exercise) != 1:
        raise UserError(f"{args.name!r} is a phase; ask for one exercise's solution")
    exercise = exercise[0]
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError("the solution is shown only after a confirmation; pass --yes")
        answer = input(f"Show the reference solution of {exercise.name}? Try `tfs check` "
                       "first. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Not shown.")
            return 0
    source = exercise.source.read_text(encoding="utf-8")
    relative = exercise.source.relative_to(catalog.ROOT).as_posix()
    for target in exercise.targets:
        node = catalog.definition(exercise.module, target)
        print(f"# {relative}::{target}, line {node.lineno}")
        print(_dedented(ast.get_source_segment(source, node, padded=True)) + "\n")
    if _pointer(exercise):
        print(f"Derived in {_pointer(exercise)}.")
    return 0


def _dedented(text: str) -> str:
    lines = text.splitlines()
    margin = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[margin:] for line in lines)


def cmd_run(args) -> int:
    from tfs.grading import swapped_in

    progress = workspace.read_progress()
    mine = [e for e in catalog.exercises() if workspace.status(e, progress) == "passed"]
    try:
        found = importlib.util.find_spec(args.module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise UserError(f"no module {args.module!r}; try phase_05_transformer_numpy.train")
    pairs = []
    for exercise in mine:
        try:
            pairs.append((exercise, workspace.load(exercise)))
        except UserError as error:
            print(f"tfs run: without {exercise.name}: {error}", file=sys.stderr)
    names = ", ".join(e.name for e, _ in pairs) or "none yet, so this is the reference code"
    print(f"tfs run: with your passed exercises: {names}", file=sys.stderr)
    sys.argv = [args.module, *args.args]
    # run_module warns (a RuntimeWarning, an error in the tests) when the module was imported
    # before; the run executes a fresh copy as __main__ either way
    sys.modules.pop(args.module, None)
    with swapped_in(pairs):
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfs", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("exercises", help="the exercises in learning order")
    listing.add_argument("phase", nargs="?", default="", help="phase_01 or phase_01_nn")
    listing.set_defaults(run=cmd_exercises)
    start = commands.add_parser("start", help="write an exercise's stub into workspace/")
    start.add_argument("name", help="an exercise (linear_backward) or a phase (phase_01)")
    start.add_argument("--force", action="store_true",
                       help="replace your file by a fresh stub (a .bak keeps yours)")
    start.set_defaults(run=cmd_start)
    check = commands.add_parser("check", help="grade your exercise, or a whole phase")
    check.add_argument("name", help="an exercise or a phase")
    check.add_argument("--examples", type=int, default=8,
                       help="hypothesis draws per oracle and case (default 8)")
    check.set_defaults(run=cmd_check)
    commands.add_parser("progress", help="what is passed, phase by phase").set_defaults(
        run=cmd_progress)
    solution = commands.add_parser("solution", help="show the reference code (asks first)")
    solution.add_argument("name")
    solution.add_argument("--yes", action="store_true", help="do not ask")
    solution.set_defaults(run=cmd_solution)
    run = commands.add_parser("run", help="run a demo module with your passed exercises in it")
    run.add_argument("module", help="e.g. phase_05_transformer_numpy.train")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the demo's own arguments")
    run.set_defaults(run=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`tfs exercises | head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return 0
