"""The exercises: every hand-written backward of the NumPy phases, found by reading the source,
plus a few larger pieces (a training step, the LSTM, BPE's merge loop, attention, the block).

Nothing here lists the backwards by hand: ``backward_functions`` walks the phase packages' files
with ``ast``, so a new ``*_backward`` becomes an exercise the moment it lands (and the coverage
test fails if it cannot be graded). Phase 9 contributes its NumPy modules only (those that do not
import torch), wherever in the package they live.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMPY_PHASES = ("phase_00_math", "phase_01_nn", "phase_02_sequence", "phase_03_tokenization",
                "phase_04_attention", "phase_05_transformer_numpy", "phase_09_modern")
NOT_OPS = ("__main__", "bench", "parity")


@dataclass(frozen=True)
class Exercise:
    """One thing to write: ``targets`` (functions, or ``Class.method``) of ``module``.

    ``kind`` picks the grader: "backward" (one backward, its forward given), "pair" (forwards
    and backwards written together), "module" (a layer's methods), "train_step" or "bpe".
    """

    name: str
    phase: str
    module: str
    targets: tuple[str, ...]
    kind: str
    hint: str = ""

    @property
    def source(self) -> Path:
        return module_path(self.module)

    @property
    def qualified(self) -> str:
        return f"{self.phase}.{self.name}"


# The larger exercises the course asks for, in phases 1-5 (phase 9's files are found, not named).
LARGER = (
    Exercise("mlp_training_step", "phase_01_nn", "phase_01_nn.demos", ("train_step",),
             "train_step", "forward, the loss, zero the gradients, backward from the loss's "
             "gradient, one optimizer step; return the loss as a float"),
    Exercise("lstm_step", "phase_02_sequence", "phase_02_sequence.lstm",
             ("lstm_cell_forward", "lstm_cell_backward", "lstm_step_forward",
              "lstm_step_backward"), "pair",
             "the cell holds the gates; the step adds the two projections and calls the cell; "
             "each forward's cache is whatever its backward will need"),
    Exercise("lstm_bptt", "phase_02_sequence", "phase_02_sequence.lstm",
             ("lstm_forward", "lstm_backward"), "pair",
             "backpropagation through time: walk the steps in reverse, carrying dh and dc, and "
             "sum the weight gradients over the steps"),
    Exercise("bpe_merge_loop", "phase_03_tokenization", "phase_03_tokenization.bpe_training",
             ("train_reference",), "bpe",
             "count every adjacent pair (weighted by its chunk's count), merge the most frequent "
             "(ties: the smallest pair), give it the next id, repeat until enough merges"),
    Exercise("causal_self_attention", "phase_04_attention", "phase_04_attention.attention",
             ("multi_head_self_attention_forward", "multi_head_self_attention_backward"), "pair",
             "project to q, k, v in one matmul, split the heads, mask the future before the "
             "softmax, merge the heads, project; the backward runs the same steps in reverse"),
    Exercise("transformer_block", "phase_05_transformer_numpy", "phase_05_transformer_numpy.block",
             ("Block.forward", "Block.backward"), "module",
             "two residual branches; a residual sum copies its gradient to both inputs, and the "
             "modules (self.ln_1, self.attn, ...) have their own forward and backward"),
)


def module_path(module: str) -> Path:
    """The source file of a dotted module name under the repository root."""
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


TORCH_IMPORT = re.compile(r"^\s*(?:import|from)\s+torch\b", re.MULTILINE)


def op_modules(packages=NUMPY_PHASES, root: Path = ROOT,
               containing: str = "") -> list[tuple[str, ast.Module]]:
    """(module name, parsed source) of every NumPy module of the packages whose text contains
    ``containing``: tests, scripts, benchmarks and parity registries left out, and any module
    that imports torch (anywhere in it, a lazy import inside a function too)."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root / package)
            if "tests" in relative.parts or path.stem in NOT_OPS:
                continue
            text = path.read_text(encoding="utf-8")
            if containing in text and not TORCH_IMPORT.search(text):
                found.append((".".join(path.relative_to(root).with_suffix("").parts)
                              .removesuffix(".__init__"), ast.parse(text)))
    return found


def backward_functions(packages=NUMPY_PHASES, root: Path = ROOT) -> list[str]:
    """``module.function`` of every public top-level ``*_backward`` in the NumPy modules."""
    return [f"{module}.{node.name}"
            for module, tree in op_modules(packages, root, containing="_backward(")
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_backward")
            and not node.name.startswith("_")]


def _phase_of(module: str) -> str:
    return module.split(".")[0]


@cache
def _unordered() -> tuple[Exercise, ...]:
    singles = [Exercise(op.rsplit(".", 1)[1], _phase_of(op), op.rsplit(".", 1)[0],
                        (op.rsplit(".", 1)[1],), "backward") for op in backward_functions()]
    return (*singles, *LARGER)


@cache
def exercises() -> tuple[Exercise, ...]:
    """Every exercise, in learning order: by phase, then by the notes chapter that derives it,
    then by where it sits in the source. A backward whose name is also used in another phase
    (phase 4's and phase 5's ``feed_forward_backward``) is told apart by its qualified name."""
    return tuple(sorted(_unordered(), key=_learning_order))


def _learning_order(exercise: Exercise):
    pointer = notes_pointer(exercise)
    chapter = pointer[0] if pointer else "~"
    larger = exercise.kind != "backward"  # within a chapter, the small pieces come first
    return (exercise.phase, chapter, larger, definition_line(exercise.module, exercise.targets[-1]))


def _in_phase(exercise: Exercise, phase: str) -> bool:
    return not phase or exercise.phase == phase or exercise.phase.startswith(phase + "_")


def find(name: str) -> Exercise:
    """The exercise called ``name``, or an op's name without ``_backward`` (``rope`` for
    ``rope_backward``, as the notes write it); a phase in front (``phase_04.feed_forward`` or
    ``phase_04_attention.feed_forward``) picks between phases. ``LookupError`` with the choices.
    """
    phase, _, short = name.rpartition(".") if name.startswith("phase_") else ("", "", name)
    candidates = [e for e in _unordered() if _in_phase(e, phase)]
    matches = [e for e in candidates if e.name == short]
    if not matches:
        matches = [e for e in candidates if e.kind == "backward"
                   and e.name == f"{short}_backward"]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise LookupError(f"{name!r} is in several phases; say which: "
                          + ", ".join(f"{e.phase[:8]}.{short}" for e in matches))
    raise LookupError(f"no exercise called {name!r}; `tfs exercises` lists them")


def handle(exercise: Exercise) -> str:
    """The shortest name that finds the exercise: its name, or ``phase_NN.name`` when another
    phase has an exercise of the same name."""
    twins = [e for e in _unordered() if e.name == exercise.name]
    return exercise.name if len(twins) == 1 else f"{exercise.phase[:8]}.{exercise.name}"


def select(name: str) -> list[Exercise]:
    """A phase's exercises (``phase_02`` or ``phase_02_sequence``), or the one called ``name``."""
    phase = [e for e in _unordered() if name and (e.phase == name
                                                  or e.phase.startswith(name + "_"))]
    return sorted(phase, key=_learning_order) or [find(name)]


# ------------------------------------------------------------------------- reading the source

@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(module_path(module).read_text(encoding="utf-8"))


def definition(module: str, target: str) -> ast.FunctionDef:
    """The ``def`` node of ``function`` or ``Class.method`` in ``module``."""
    body = _tree(module).body
    *owners, leaf = target.split(".")
    for owner in owners:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == owner).body
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name == leaf:
            return node
    raise LookupError(f"{module} has no {target}")


def definition_line(module: str, target: str) -> int:
    return definition(module, target).lineno


def forward_of(backward: str) -> str:
    return backward.removesuffix("_backward") + "_forward"


def shapes_of(module: str, function: str) -> str:
    """The shapes a forward's docstring states (``x: (..., D), w: (D, M) -> y: (..., M)``),
    without the formula that follows them; "" when it states none."""
    try:
        doc = ast.get_docstring(definition(module, function)) or ""
    except LookupError:
        return ""
    doc = " ".join(doc.split())
    if "->" not in doc:
        return ""
    inputs, outputs = doc.split("->", 1)
    outputs = re.split(r"(?<=\)):|[;=]|\. |``| \w+ = ", outputs)[0].strip().rstrip(",.")
    return f"{inputs.strip()} -> {outputs}"


def cache_expression(module: str, forward: str) -> str:
    """What the forward returns as its cache, as written in its last ``return out, cache``."""
    try:
        node = definition(module, forward)
    except LookupError:
        return ""
    returns = [n for n in ast.walk(node) if isinstance(n, ast.Return)
               and isinstance(n.value, ast.Tuple) and len(n.value.elts) == 2]
    return ast.unparse(returns[-1].value.elts[1]) if returns else ""


def _section(line: str, above) -> str:
    """The section a pointer sits in: the one its line names ("section 2.3"), else the numbered
    heading above it; "" when it sits under an unnumbered one ("In the code"), which says
    nothing about where the derivation is."""
    stated = re.search(r"sections? (\d+\.\d+)", line)
    if stated:
        return f"section {stated.group(1)}"
    headings = [h for h in above if h.startswith("#")]
    nearest = headings[-1].lstrip("#").strip() if headings else ""
    return nearest if re.match(r"\d", nearest) else ""


@cache
def _notes() -> tuple[tuple[Path, tuple[str, ...]], ...]:
    return tuple((path, tuple(path.read_text(encoding="utf-8").splitlines()))
                 for path in sorted(ROOT.glob("phase_*/notes/*.md")))


def notes_pointer(exercise: Exercise) -> tuple[str, str] | None:
    """(notes file, section heading) of the first chapter that points at one of the targets
    (``path/file.py::name``, or the class of a method); else the notes the module's docstring
    names; else None."""
    path = exercise.source.relative_to(ROOT).as_posix()
    wanted = [f"{path}::{t}" for t in exercise.targets]
    wanted += [f"{path}::{t.split('.')[0]}" for t in exercise.targets if "." in t]
    own = [(p, lines) for p, lines in _notes() if p.parts[-3] == exercise.phase]
    others = [(p, lines) for p, lines in _notes() if p.parts[-3] != exercise.phase]
    for pattern in wanted:
        whole = re.compile(re.escape(pattern) + r"(?![\w.])")
        for notes, lines in own + others:
            for number, line in enumerate(lines):
                if pattern in line and whole.search(line):
                    return notes.relative_to(ROOT).as_posix(), _section(line, lines[:number])
    doc = ast.get_docstring(_tree(exercise.module)) or ""
    named = re.search(r"(phase_\w+/notes/[\w.-]+\.md)", doc)
    return (named.group(1), "") if named else None
