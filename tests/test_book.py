"""The rendered book, checked in a real browser.

The site is built with `mkdocs build --strict` (or taken from $TFS_SITE_DIR, where CI has just
built it), served from a loopback address, and opened by headless Chromium with every host name
made unresolvable, so nothing can come from the network. On three chapters it checks that
MathJax typeset every formula without an error and left no raw TeX in the text, that every
`file.py::name` pointer is a link to a page holding that name's anchor, and it keeps a
screenshot. Without Chromium or MkDocs it is skipped, with the reason, except in CI (CI set),
where it must run.
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = (
    "phase_00_math/notes/02_calculus.html",
    "phase_01_nn/notes/02_backpropagation.html",
    "phase_05_transformer_numpy/notes/01_layer_norm.html",
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
POINTER_TEXT = re.compile(r"\.py::\w")
# Typeset math stays in: its MathML copy holds the formula's characters, so a stray $ shows.
HIDDEN_TAGS = {"script", "style", "code", "pre"}


def required(reason: str) -> None:
    """Skip with the reason on a learner's machine; in CI the book must be checked."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI must run the browser test")
    pytest.skip(reason)


def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        required("no Chromium on PATH (Debian: apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if os.environ.get("TFS_SITE_DIR"):
        return Path(os.environ["TFS_SITE_DIR"])
    if importlib.util.find_spec("mkdocs") is None:
        required('MkDocs is not installed (pip install -e ".[docs]")')
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                    "--site-dir", str(out)], cwd=ROOT, check=True)
    return out


@pytest.fixture(scope="module")
def hook():
    """The build hook (docs/hooks/book.py), loaded as MkDocs loads it."""
    if importlib.util.find_spec("mkdocs") is None:
        required('MkDocs is not installed (pip install -e ".[docs]")')
    spec = importlib.util.spec_from_file_location("book_hook", ROOT / "docs/hooks/book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pointers_become_links_outside_code_blocks_only(hook):
    pages = {"phase_01_nn/linear.py.md"}
    text = ("See `phase_01_nn/linear.py::linear_backward` and `phase_01_nn/linear.py`.\n"
            "```python\n`phase_01_nn/linear.py::linear_backward`\n```\n"
            "Already a link: [`phase_01_nn/linear.py::x`](elsewhere.md); "
            "no page: `phase_01_nn/gone.py::f`.")
    linked = hook.link_code_references(text, "phase_01_nn/notes/02_backpropagation.md", pages)
    assert linked.split("\n") == [
        "See [`phase_01_nn/linear.py::linear_backward`](../linear.py.md#linear_backward) and "
        "[`phase_01_nn/linear.py`](../linear.py.md).",
        "```python", "`phase_01_nn/linear.py::linear_backward`", "```",
        "Already a link: [`phase_01_nn/linear.py::x`](elsewhere.md); "
        "no page: `phase_01_nn/gone.py::f`.",
    ]
    cited = hook.link_code_references("See `papers/x.md` and `papers/gone.md`.",
                                      "phase_01_nn/notes/02.md", pages, frozenset({"papers/x.md"}))
    assert cited == "See [`papers/x.md`](../../papers/x.md) and `papers/gone.md`."


def test_a_code_page_anchors_every_name_a_pointer_can_name(hook):
    source = ('"""Doc."""\nLIMIT = 3\n\n\n# Why.\ndef f(x):\n    return x\n\n\n'
              "class Box:\n    SIZE = 2\n\n    def __init__(self):\n        pass\n")
    lines = source.splitlines()
    pieces = hook.sections(ast.parse(source).body, lines, 1, len(lines), "", 2)
    names = [name for name, *_ in pieces if name]
    constants = [constant for *_, piece_constants in pieces for constant in piece_constants]
    assert sorted(names + constants) == ["Box", "Box.SIZE", "Box.__init__", "LIMIT", "f"]
    starts = {name: start for name, _, _, start, _, _ in pieces}
    assert starts["f"] == 5, "the comment above a definition belongs to its piece"


def test_github_style_answers_become_collapsible_blocks_inside_their_list_item(hook):
    source = ("1. Why?\n\n   $$ x $$\n\n   <details><summary>Answer</summary>\n\n"
              "   Because $y$.\n\n   </details>\n\n10. Next?\n\n```\n1. code\n   kept\n```\n")
    assert hook.answers_as_collapsible_blocks(hook.reindent_list_items(source)) == (
        "1. Why?\n\n    $$ x $$\n\n    ??? question \"Answer\"\n\n        Because $y$.\n\n\n"
        "10. Next?\n\n```\n1. code\n   kept\n```\n")


def test_an_item_already_indented_by_four_is_left_as_written(hook):
    source = "1. Why?\n\n    $$\n    x\n    $$\n\n    <details><summary>Answer</summary>\n"
    assert hook.reindent_list_items(source) == source
    mixed = "2. The row:\n   so\n\n    $$\n    x\n    $$\n"
    assert hook.reindent_list_items(mixed) == mixed.replace("   so", "    so")


def test_math_that_arithmatex_could_not_delimit_is_reported(hook):
    fine = r'<p><span class="arithmatex">\(x^2\)</span> and <code>$$</code></p>'
    assert hook.math_problems(fine) == []
    joined = '<div class="arithmatex">\\[a\\]$$\n$$b\\]</div>'
    assert [p.split(":")[0] for p in hook.math_problems(joined)] == ["a formula holds a raw $"]
    stray = hook.math_problems("<p>left $$x$$ raw</p>")
    assert [p.split(":")[0] for p in stray] == ["a $$ outside any formula"]
    inline = hook.math_problems(r"<p>costs $5 or $6; but $\bar x_i$ is raw</p>")
    assert inline == [r"inline math left as text: '$\\bar x_i$'"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def base_url(site: Path):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium, offline: every host name fails to resolve, only 127.0.0.1 answers.
    The virtual time budget lets MathJax finish before the DOM or the picture is taken."""
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-dev-shm-usage",
               f"--user-data-dir={profile}",
               "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
               "--virtual-time-budget=20000", *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


class PageReader(HTMLParser):
    """The visible text outside code and typeset math, the links, and the math counts."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.math_sources = 0
        self.typeset = 0
        self.errors = 0
        self._hidden = 0
        self._link: list | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if "arithmatex" in (attributes.get("class") or "").split():
            self.math_sources += 1
        self.typeset += tag == "mjx-container"
        self.errors += tag == "mjx-merror"
        if tag in HIDDEN_TAGS:
            self._hidden += 1
        if tag == "a" and "href" in attributes:
            self._link = [attributes["href"], ""]

    def handle_endtag(self, tag):
        if tag in HIDDEN_TAGS:
            self._hidden -= 1
        if tag == "a" and self._link is not None:
            self.links.append(tuple(self._link))
            self._link = None

    def handle_data(self, data):
        if self._link is not None:
            self._link[1] += data
        if not self._hidden:
            self.text.append(data)


def read(html: str) -> PageReader:
    reader = PageReader()
    reader.feed(html)
    return reader


@pytest.mark.parametrize("page", PAGES)
def test_a_chapter_renders_offline_with_math_and_code_links(page, base_url, tmp_path):
    url = urljoin(base_url, page)
    rendered = read(chromium(url, tmp_path / "profile", "--dump-dom").stdout)

    assert rendered.math_sources > 0, f"{page}: no math found to typeset"
    assert rendered.typeset >= rendered.math_sources, \
        f"{page}: {rendered.typeset} of {rendered.math_sources} formulas typeset by MathJax"
    assert rendered.errors == 0, f"{page}: MathJax reported {rendered.errors} TeX errors"
    visible = " ".join(rendered.text)
    for raw in ("$", "\\(", "\\["):
        assert raw not in visible, f"{page}: raw TeX {raw!r} left in the visible text"

    pointers = [(href, text) for href, text in rendered.links if POINTER_TEXT.search(text)]
    assert pointers, f"{page}: no file.py::name pointer rendered as a link"
    for href, text in pointers:
        target, anchor = urldefrag(urljoin(url, href))
        name = text.split("::")[1]
        with urllib.request.urlopen(target, timeout=10) as response:
            assert response.status == 200, f"{page}: {text} -> {target}"
            target_ids = read(response.read().decode("utf-8")).ids
        assert anchor == name and anchor in target_ids, f"{page}: {text} -> {href}"

    screenshot = tmp_path / (Path(page).stem + ".png")
    chromium(url, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,1600",
             "--hide-scrollbars")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
