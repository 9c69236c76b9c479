"""MkDocs hooks that turn the repository into the book at build time.

- The phases' notes (with their figures) and papers/ are added to the site at the paths they
  have in the repository, so every relative link written for GitHub works unchanged.
- Every Python file of a phase (tests aside) gets a generated code page, `path/file.py.md`,
  with one heading per function, class and method, and a hidden anchor per module constant.
- Every `path/file.py::name` pointer in a chapter becomes a link to that heading; `--strict`
  with anchor validation turns a pointer to a missing name into a failed build.
- The navigation is built in phase order from the tree: index, chapters, appendices, code.
- MathJax is copied from the django-static-mathjax wheel into assets/mathjax/, so the math is
  served by the site itself and reading it needs no network.

Nothing here writes into the repository; the generated pages exist only in the build.
"""

from __future__ import annotations

import ast
import logging
import posixpath
import re
import textwrap
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PHASE_DIR = re.compile(r"^phase_(\d{2})_([a-z0-9_]+)$")
# A pointer or a file path in backticks that is not already the text of a link.
CODE_REFERENCE = re.compile(r"(?<!\[)`((?:[\w.-]+/)*[\w.-]+\.py)(?:::([A-Za-z_][\w.]*))?`(?!\]\()")
# A repository path to a page of the book in backticks (`papers/2017-vaswani-transformer.md`).
PAGE_REFERENCE = re.compile(r"(?<!\[)`((?:[\w.-]+/)+[\w.-]+\.md)`(?!\]\()")
FENCE = re.compile(r"^\s*(```|~~~)")
LIST_ITEM = re.compile(r"^(?:\d+\.|[-*+]) +(?=\S)")
DETAILS = re.compile(r"^(?P<indent> *)<details>\s*<summary>(?P<title>.*?)</summary>(?P<body>.*?)"
                     r"</details> *$", re.MULTILINE | re.DOTALL)
LIST_INDENT = 4  # what Python-Markdown needs for a list item's second paragraph
# A relative link to a folder, as GitHub readers write it to show the folder's README.
FOLDER_LINK = re.compile(r"\]\((?!\w+:)([^)#\s]+/)\)")
FORMULA = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.DOTALL)
# $...$ with TeX inside (a backslash, ^, _ or a brace) that arithmatex did not take.
RAW_INLINE_MATH = re.compile(r"(?<!\$)\$(?=\S)[^$<>\n]*?[\\^_{][^$<>\n]*?(?<=\S)\$(?!\$)")
CODE_OR_MATH = re.compile(r"<(pre|code)\b.*?</\1>", re.DOTALL)
log = logging.getLogger("mkdocs.plugins.book")
MATHJAX_PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml", "ui", "a11y")


def phase_dirs() -> list[Path]:
    return sorted(p for p in ROOT.iterdir() if p.is_dir() and PHASE_DIR.match(p.name))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def note_pages(phase: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(index, chapters, appendices) of a phase's notes, each in file-name order."""
    pages = sorted((phase / "notes").glob("*.md"))
    index = [p for p in pages if p.name == "README.md"]
    appendices = [p for p in pages if p.name.startswith("appendix")]
    chapters = [p for p in pages if p not in index and p not in appendices]
    return index, chapters, appendices


def code_files(phase: Path) -> list[Path]:
    return sorted(p for p in phase.rglob("*.py")
                  if "tests" not in p.relative_to(phase).parts and p.name != "__init__.py")


def code_page_uri(py_path: str) -> str:
    return f"{py_path}.md"


def phase_title(phase: Path) -> str:
    """The title of the phase's notes index (its first line), else one made from its name."""
    index = phase / "notes" / "README.md"
    if index.is_file():
        first = index.read_text(encoding="utf-8").splitlines()[0]
        if first.startswith("# "):
            return first[2:].strip()
    number, words = PHASE_DIR.match(phase.name).groups()
    return f"Phase {int(number)}: {words.replace('_', ' ')}"


# --- navigation -------------------------------------------------------------------------------

def phase_nav(phase: Path) -> list:
    index, chapters, appendices = note_pages(phase)
    entries: list = [rel(p) for p in index + chapters]
    if appendices:
        entries.append({"Appendices": [rel(p) for p in appendices]})
    code = [{p.relative_to(phase).as_posix(): code_page_uri(rel(p))} for p in code_files(phase)]
    if code:
        entries.append({"Code": code})
    return entries


def on_config(config):
    papers = sorted((ROOT / "papers").glob("*.md"))
    readme = [rel(p) for p in papers if p.name == "README.md"]
    config["nav"] = (
        [{"Home": "index.md"}]
        + [{phase_title(phase): phase_nav(phase)} for phase in phase_dirs()]
        + [{"Papers": readme + [rel(p) for p in papers if p.name != "README.md"]}]
    )
    return config


# --- files ------------------------------------------------------------------------------------

def repository_file(config, path: Path) -> File:
    return File.generated(config, rel(path), abs_src_path=str(path))


def mathjax_root() -> Path:
    import mathjax  # the django-static-mathjax wheel; a dependency of the docs extra

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def mathjax_files(config) -> list[File]:
    source = mathjax_root()
    found = []
    for part in MATHJAX_PARTS:
        target = source / part
        paths = [target] if target.is_file() else sorted(
            p for p in target.rglob("*") if p.is_file())
        found += [File.generated(config, f"assets/mathjax/{p.relative_to(source).as_posix()}",
                                 abs_src_path=str(p)) for p in paths]
    return found


def on_files(files: Files, config) -> Files:
    for phase in phase_dirs():
        notes = phase / "notes"
        for path in sorted(p for p in notes.rglob("*") if p.is_file()):
            files.append(repository_file(config, path))
        for path in code_files(phase):
            files.append(File.generated(config, code_page_uri(rel(path)),
                                        content=code_page(path)))
    for path in sorted(p for p in (ROOT / "papers").rglob("*") if p.is_file()):
        files.append(repository_file(config, path))
    for file in mathjax_files(config):
        files.append(file)
    return files


# --- code pages -------------------------------------------------------------------------------

def start_line(node: ast.AST, lines: list[str]) -> int:
    """First line of a definition, with its decorators and the comment lines right above it."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    while first > 1 and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return first


def assigned_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def sections(body: list[ast.stmt], lines: list[str], first: int, last: int, prefix: str,
             level: int) -> list[tuple[str | None, str, int, int, int, list[str]]]:
    """Split lines first..last into (name, kind, heading level, start, end, constants) pieces,
    one per definition in body; methods of a class become pieces of their own one level down.
    The first piece, with no name, is what comes before the first definition."""
    defs = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                               ast.ClassDef))]
    starts = [start_line(n, lines) for n in defs]
    pieces = []
    head_end = (starts[0] - 1) if defs else last
    constants = [f"{prefix}{name}" for n in body if n.lineno <= head_end
                 for name in assigned_names(n)]
    pieces.append((None, "", level, first, head_end, constants))
    for i, node in enumerate(defs):
        end = (starts[i + 1] - 1) if i + 1 < len(defs) else last
        name = f"{prefix}{node.name}"
        after = [f"{prefix}{nm}" for n in body if starts[i] < n.lineno <= end
                 for nm in assigned_names(n)]
        if isinstance(node, ast.ClassDef):
            inner = sections(node.body, lines, starts[i], end, f"{name}.", level + 1)
            _, _, _, head_start, head_end, attributes = inner[0]
            pieces.append((name, "class", level, head_start, head_end, attributes + after))
            pieces += inner[1:]
        else:
            pieces.append((name, "def", level, starts[i], end, after))
    return pieces


def fenced(lines: list[str], start: int, end: int) -> str:
    chunk = lines[start - 1:end]
    while chunk and not chunk[-1].strip():
        chunk.pop()
    if not chunk:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", "\n".join(chunk))), default=0)
    fence = "`" * max(3, longest + 1)
    return f'{fence} python linenums="{start}"\n' + "\n".join(chunk) + f"\n{fence}\n"


def code_page(path: Path) -> str:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    parts = [f"# `{rel(path)}`\n",
             "The source as it is in the repository; each heading is a name the notes can "
             "point to as `file.py::name`.\n"]
    for name, kind, level, start, end, constants in sections(tree.body, lines, 1, len(lines),
                                                             "", 2):
        # The pointer's target is an anchor named exactly as the pointer spells it; the heading
        # keeps its own generated id, so no id appears twice on the page.
        anchors = ([name] if name is not None else []) + constants
        parts += [f'<a id="{anchor}"></a>\n' for anchor in anchors]
        if name is not None:
            parts.append(f"{'#' * level} {kind} `{name}`\n")
        block = fenced(lines, start, end)
        if block:
            parts.append(block)
    return "\n".join(parts)


# --- pointers as links ------------------------------------------------------------------------

def link_code_references(markdown: str, page_uri: str, code_pages: set[str],
                         pages: frozenset[str] = frozenset()) -> str:
    """Turn `path.py::name` and `path.py` in backticks into links to the code pages, and
    `path/page.md` into a link to that page of the book, outside fenced code blocks."""
    here = posixpath.dirname(page_uri)
    out, in_fence = [], False

    def to_link(match: re.Match) -> str:
        path, name = match.group(1), match.group(2)
        target = code_page_uri(path)
        if target not in code_pages:
            return match.group(0)
        href = posixpath.relpath(target, here or ".") + (f"#{name}" if name else "")
        return f"[{match.group(0)}]({href})"

    def to_page(match: re.Match) -> str:
        if match.group(1) not in pages:
            return match.group(0)
        return f"[{match.group(0)}]({posixpath.relpath(match.group(1), here or '.')})"

    for line in markdown.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        if not in_fence:
            line = PAGE_REFERENCE.sub(to_page, CODE_REFERENCE.sub(to_link, line))
        out.append(line)
    return "\n".join(out)


def link_folder_indexes(markdown: str, page_uri: str, pages: set[str]) -> str:
    """A link to a folder (`../../phase_07_gpt/notes/`) goes to that folder's README.md, the page
    GitHub would show for it; a folder without one is left for --strict to report."""
    here = posixpath.dirname(page_uri)

    def to_index(match: re.Match) -> str:
        index = posixpath.join(match.group(1), "README.md")
        if posixpath.normpath(posixpath.join(here, index)) in pages:
            return f"]({index})"
        return match.group(0)

    return FOLDER_LINK.sub(to_index, markdown)


# --- GitHub's Markdown, read by Python-Markdown ---------------------------------------------------

def reindent_list_items(markdown: str) -> str:
    """Indent a list item's continuation lines by 4 spaces where they are indented by fewer
    (by the marker's width: "1. " is 3).

    GitHub (CommonMark) keeps a paragraph, a formula or a <details> indented under the item's
    text inside the item; Python-Markdown wants 4 spaces, and otherwise ends the list there
    (the numbering restarts and an indented $$...$$ is left as text). Lines already indented
    by 4 or more are left as they are written."""
    out, width, in_fence = [], None, False
    for line in markdown.split("\n"):
        if FENCE.match(line) and not line.startswith(" "):
            in_fence, width = not in_fence, None
        item = None if in_fence else LIST_ITEM.match(line)
        leading = len(line) - len(line.lstrip(" "))
        if item:
            width = len(item.group(0))
        elif width is not None and line.strip() and not leading:
            width = None
        elif width is not None and line.strip() and width <= leading < LIST_INDENT:
            line = " " * (LIST_INDENT - leading) + line
        out.append(line)
    return "\n".join(out)


def answers_as_collapsible_blocks(markdown: str) -> str:
    """`<details><summary>T</summary> body </details>` (GitHub's collapsible answer) becomes
    Material's collapsible `??? question "T"` block, whose body is Markdown: math, pointers and
    code in an answer render as in the chapter."""
    def to_block(match: re.Match) -> str:
        indent = match.group("indent")
        body = textwrap.dedent(match.group("body").strip("\n")).strip()
        title = match.group("title").strip().replace('"', "'")
        return (f'{indent}??? question "{title}"\n\n'
                + textwrap.indent(body, indent + " " * LIST_INDENT) + "\n")

    return DETAILS.sub(to_block, markdown)


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    if page.file.src_uri.endswith(".py.md"):
        return markdown
    sources = {f.src_uri for f in files}
    code_pages = {uri for uri in sources if uri.endswith(".py.md")}
    markdown = answers_as_collapsible_blocks(reindent_list_items(markdown))
    markdown = link_folder_indexes(markdown, page.file.src_uri, sources)
    pages = frozenset(uri for uri in sources if uri.endswith(".md"))
    return link_code_references(markdown, page.file.src_uri, code_pages, pages)


# --- math that did not parse ------------------------------------------------------------------

def math_problems(html: str) -> list[str]:
    """Raw TeX that arithmatex could not delimit: a dollar sign inside a formula (two display
    blocks on adjacent lines read as one), a `$$` left in the text, or an inline $...$ holding
    TeX that stayed text."""
    problems = [f"a formula holds a raw $: {body.strip()[:60]!r}"
                for _, body in FORMULA.findall(html) if "$" in body]
    prose = FORMULA.sub("", CODE_OR_MATH.sub("", html))
    if "$$" in prose:
        at = prose.index("$$")
        problems.append(f"a $$ outside any formula: {prose[max(0, at - 40):at + 20]!r}")
    problems += [f"inline math left as text: {raw!r}" for raw in RAW_INLINE_MATH.findall(prose)]
    return problems


def on_page_content(html: str, page, config, files: Files) -> str:
    for problem in math_problems(html):
        log.warning("%s: %s; put each $$...$$ block between blank lines", page.file.src_uri,
                    problem)
    return html
