"""The structural rules of the project, as functions the tests apply to the tree and to
planted violations (so each rule is shown able to fail)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASE_DIR = re.compile(r"^phase_(\d{2})_[a-z0-9_]+$")
NUMPY_ONLY_UP_TO = 5
TOOLING = "tfs"  # the course tooling: it may import any phase, no phase may import it
POINTER = re.compile(r"`?((?:[\w.-]+/)*[\w.-]+\.py)::([A-Za-z_][\w.]*)`?")


def phase_dirs(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and PHASE_DIR.match(p.name))


def phase_number(name: str) -> int | None:
    match = re.match(r"^phase_(\d{2})_", name)
    return int(match.group(1)) if match else None


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import statement; relative imports are skipped
    because they stay inside their own phase."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def import_violations(root: Path = ROOT) -> list[str]:
    """Every import of a later phase, of the course tooling, and of torch in phases 0 to 5."""
    problems = []
    for phase in phase_dirs(root):
        own = phase_number(phase.name)
        for path in sorted(phase.rglob("*.py")):
            rel = path.relative_to(root)
            for line, module in imported_modules(path.read_text(encoding="utf-8")):
                top = module.split(".")[0]
                other = phase_number(top)
                if other is not None and other > own:
                    problems.append(f"{rel}:{line} imports {top}, a later phase")
                if top == TOOLING:
                    problems.append(f"{rel}:{line} imports {top}, the course tooling, which "
                                    "only imports phases")
                if top == "torch" and own <= NUMPY_ONLY_UP_TO:
                    problems.append(f"{rel}:{line} imports torch, but phases 0-5 are NumPy only")
    return problems


def defined_names(source: str) -> set[str]:
    """Top-level functions, classes and assignments, plus ``Class.method`` for methods."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {f"{node.name}.{item.name}" for item in node.body
                          if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def note_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for phase in phase_dirs(root) for p in (phase / "notes").glob("*.md")) + \
        sorted((root / "papers").glob("*.md"))


def broken_pointers(root: Path = ROOT) -> list[str]:
    """Every ``path.py::name`` in the notes that does not name an existing definition."""
    problems = []
    for note in note_files(root):
        for number, line in enumerate(note.read_text(encoding="utf-8").splitlines(), 1):
            for path, name in POINTER.findall(line):
                where = f"{note.relative_to(root)}:{number}: {path}::{name}"
                target = root / path
                if not target.is_file():
                    problems.append(f"{where} (no such file)")
                elif name not in defined_names(target.read_text(encoding="utf-8")):
                    problems.append(f"{where} (no such definition)")
    return problems


BACKWARD_NAME = re.compile(r"(?:^|_)backward(?:_|$)")


def _is_backward_name(name: str) -> bool:
    """``*_backward`` and kernels such as ``flash_backward_tiles``; a ``Module.backward`` method
    is composition, not an op, so a bare ``backward`` does not count."""
    return name != "backward" and bool(BACKWARD_NAME.search(name))


def backward_functions(phase: Path, root: Path = ROOT) -> list[tuple[str, str]]:
    """(file relative to root, name) for every backward function of a phase: top-level functions
    and methods (``Class.method``), found by walking the package, its tests excluded."""
    found = []
    for path in sorted(phase.rglob("*.py")):
        if "tests" in path.relative_to(phase).parts:
            continue
        rel = path.relative_to(root).as_posix()
        for name in sorted(defined_names(path.read_text(encoding="utf-8"))):
            if _is_backward_name(name.rsplit(".", 1)[-1]):
                found.append((rel, name))
    return found


def notes_pointers(root: Path = ROOT) -> set[tuple[str, str]]:
    return {pointer for note in note_files(root)
            for pointer in POINTER.findall(note.read_text(encoding="utf-8"))}


def backwards_without_a_pointer(phases: list[Path], root: Path = ROOT) -> list[str]:
    """Every backward of the given phases that no notes chapter points to as ``file.py::name``."""
    pointed = notes_pointers(root)
    return [f"{path}::{name}" for phase in phases
            for path, name in backward_functions(phase, root) if (path, name) not in pointed]
