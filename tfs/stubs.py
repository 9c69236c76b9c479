"""Stubs generated from the real source: the exercise's function bodies become a TODO.

The module is copied as it is, byte for byte, except the bodies of the chosen functions: each
becomes a docstring (shapes, what the cache holds, what to return, the notes section, a hint)
and ``raise NotImplementedError``. Positions come from ``ast``, so the stub follows the code
wherever it moves and cannot drift from it. A backward's own docstring is left out: it usually
states the answer.
"""

from __future__ import annotations

import ast
import textwrap

from tfs.catalog import (
    Exercise,
    cache_expression,
    definition,
    forward_of,
    handle,
    notes_pointer,
    shapes_of,
)

MARKER = "NotImplementedError"
WIDTH = 100
BACKWARD_HINT = ("unpack the cache; push the upstream gradient back through the forward's steps "
                 "in reverse; where the forward broadcast an array, sum over those axes")


def _gradient_names(exercise: Exercise, forward: str) -> list[str]:
    try:
        node = definition(exercise.module, forward)
    except LookupError:
        return []
    return [f"d{arg.arg}" for arg in node.args.posonlyargs + node.args.args]


def _backward_todo(exercise: Exercise, target: str) -> list[str]:
    forward = forward_of(target)
    shapes = shapes_of(exercise.module, forward)
    written_here = forward in exercise.targets
    cache = ("whatever your forward put there" if written_here
             else cache_expression(exercise.module, forward) or "see the forward")
    grads = _gradient_names(exercise, forward)
    lines = [f"Forward: {forward}({shapes})" if shapes else f"Forward: {forward}",
             "Gets: the upstream gradient (the forward output's shape; a tuple of them when",
             f"  the forward returns several), and the cache {forward} returned: {cache}.",
             f"Returns: ({', '.join(grads)}{',' if len(grads) == 1 else ''}): one gradient per "
             "array argument,",
             "  in order, each of its argument's shape (None for an argument given as None)."]
    return lines


def _todo_lines(exercise: Exercise, target: str) -> list[str]:
    node = definition(exercise.module, target)
    if target.endswith("_backward"):
        body = _backward_todo(exercise, target)
        hint = exercise.hint or BACKWARD_HINT
    else:
        body = (ast.get_docstring(node) or "").splitlines()
        if target.endswith("_forward"):
            body += ["Returns (out, cache): the cache is whatever your backward will need."]
        hint = exercise.hint
    pointer = notes_pointer(exercise)
    if pointer:
        body.append(f"Notes: {pointer[0]}" + (f", {pointer[1]}" if pointer[1] else ""))
    if hint:
        body.append(f"Hint: {hint}.")
    return body


def stub_body(exercise: Exercise, target: str, indent: str) -> list[str]:
    """The replacement lines for one function's body."""
    text = [f'"""TODO (tfs exercise {exercise.name}): write {target}.', ""]
    for line in _todo_lines(exercise, target):
        text += textwrap.wrap(line, WIDTH - len(indent), subsequent_indent="  ") or [""]
    lines = [f"{indent}{line}".rstrip() + "\n" for line in text]
    lines.append(f'{indent}"""\n')
    lines.append(f'{indent}raise {MARKER}("{target} is not written yet: see its TODO, then run '
                 f'`tfs check {handle(exercise)}`")\n')
    return lines


def stub_source(exercise: Exercise) -> str:
    """The exercise's module with every target's body replaced by its TODO."""
    source = exercise.source.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    spans = []
    for target in exercise.targets:
        node = definition(exercise.module, target)
        first = node.body[0]
        spans.append((first.lineno - 1, node.end_lineno, " " * first.col_offset, target))
    for start, end, indent, target in sorted(spans, reverse=True):
        lines[start:end] = stub_body(exercise, target, indent)
    header = (f"# tfs exercise {exercise.name}: a copy of {exercise.source.name} "
              f"({exercise.module}) with {', '.join(exercise.targets)} left for you to write.\n"
              f"# Fill in each TODO, then run `tfs check {handle(exercise)}`. Only those functions "
              "are graded;\n# the rest of this file is the reference code, there to read.\n")
    return header + "".join(lines)
