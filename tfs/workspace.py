"""The learner's workspace: a git-ignored folder of exercise files and a plain JSON progress file.

``workspace/<phase>/<exercise>.py`` holds the learner's copy of one exercise;
``workspace/progress.json`` records each check's verdict. ``TFS_WORKSPACE`` moves the folder.
Nothing here ever overwrites a learner's file without ``force``, and then only after keeping a
numbered ``.bak`` beside it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from tfs.catalog import ROOT, Exercise, handle
from tfs.stubs import stub_source


class UserError(Exception):
    """A mistake the learner can fix; the command prints it as one ``error:`` line."""


def root() -> Path:
    return Path(os.environ.get("TFS_WORKSPACE", ROOT / "workspace"))


def exercise_file(exercise: Exercise) -> Path:
    return root() / exercise.phase / f"{exercise.name}.py"


def _backup_path(path: Path) -> Path:
    backup, number = path.with_name(path.name + ".bak"), 1
    while backup.exists():
        number += 1
        backup = path.with_name(f"{path.name}.bak{number}")
    return backup


def start(exercise: Exercise, *, force: bool = False) -> tuple[Path, str]:
    """Write the exercise's stub; returns (path, what happened). An existing file is kept unless
    it is still the untouched stub, or ``force`` is set (then it is first copied to a .bak)."""
    path = exercise_file(exercise)
    stub = stub_source(exercise)
    if path.exists():
        current = path.read_text(encoding="utf-8")
        if current == stub:
            return path, "already there, untouched"
        if not force:
            return path, "kept: it holds your work (`--force` replaces it, keeping a .bak)"
        backup = _backup_path(path)
        backup.write_text(current, encoding="utf-8")
        path.write_text(stub, encoding="utf-8")
        return path, f"replaced by a fresh stub; your work is in {backup.name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(stub, encoding="utf-8")
    return path, "created"


def load(exercise: Exercise) -> ModuleType:
    """Import the learner's file as a module of its own (the reference module is untouched)."""
    path = exercise_file(exercise)
    if not path.exists():
        raise UserError(f"{exercise.name} is not started ({path} does not exist); run "
                        f"`tfs start {handle(exercise)}` first")
    name = f"workspace.{exercise.module}"  # names the learner's ops in the checker's messages
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    _register(name, module)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise UserError(f"{path}, line {error.lineno}: {error.msg}; fix it and check again") \
            from None
    except Exception as error:  # noqa: BLE001 - whatever stops their file from loading is told
        raise UserError(f"{path} does not load ({type(error).__name__}: {error}); if the "
                        "project's code moved since you started it, `tfs start "
                        f"{handle(exercise)} --force` writes a fresh stub and keeps yours as a "
                        ".bak") from None
    return module


def _register(name: str, module: ModuleType) -> None:
    """Put the module, and empty packages above it, in ``sys.modules``: dataclasses, pickling
    and numba's on-disk cache look a function's module up by its dotted name."""
    parts = name.split(".")
    for depth in range(1, len(parts)):
        package = ".".join(parts[:depth])
        if package not in sys.modules:
            sys.modules[package] = ModuleType(package)
            sys.modules[package].__path__ = []
    sys.modules[name] = module


# ----------------------------------------------------------------------------------- progress

def progress_file() -> Path:
    return root() / "progress.json"


def read_progress() -> dict:
    path = progress_file()
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error}); delete it to start the record "
                        "again (your exercise files are separate)") from None


def record(exercise: Exercise, passed: bool, seconds: float, summary: str) -> None:
    progress = read_progress()
    progress[exercise.qualified] = {
        "status": "passed" if passed else "failing",
        "checked": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "summary": summary,
    }
    progress_file().parent.mkdir(parents=True, exist_ok=True)
    progress_file().write_text(json.dumps(progress, indent=2, sort_keys=True) + "\n",
                               encoding="utf-8")


def status(exercise: Exercise, progress: dict) -> str:
    """"not started", "started" (never checked), "failing" or "passed"."""
    if not exercise_file(exercise).exists():
        return "not started"
    entry = progress.get(exercise.qualified)
    return entry["status"] if entry else "started"
