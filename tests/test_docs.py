"""The documentation, checked: a short README that starts with the two commands, and
links that work for anyone who clones the repository.

* ``README.md`` has at most :data:`README_MAX_LINES` lines, and the first thing after
  its title is a code block holding exactly :data:`COMMANDS`.
* Every relative link (markdown links and images, reference definitions, HTML ``src``
  and ``href``) in ``README.md`` and ``docs/**/*.md`` names a file or folder inside the
  repository; a ``#fragment`` on a markdown file names one of its headings, slugged as
  GitHub slugs them.  Links inside code blocks and code spans are not links.
* No doc points outside the repository (the design once lived in ``../shared``).
* Every result file a doc names (``benchmarks/results/NAME``, or a bare ``NAME.json`` or
  ``NAME.csv`` in a code span) exists.

Each check is also run on an injected violation, so a check that silently stopped
checking would fail here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
README_MAX_LINES = 250
COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && "
    ".venv/bin/overlay swarm --peers 50 --duration 30",
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && "
    ".venv/bin/python -m pytest -q",
)

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # the text, one level of nested brackets allowed
    r"\(\s*<?([^\s()<>]+(?:\([^\s()]*\))?[^\s()<>]*)>?(?:\s+[\"'(][^)]*)?\s*\)"
)
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
HTML_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
RESULT_PATH = re.compile(r"benchmarks/results/([A-Za-z0-9_.\-/]*[A-Za-z0-9_\-]\.[a-z]+)")
BARE_RESULT = re.compile(r"^[a-z0-9_]+\.(?:json|csv)$")


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def prose_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` outside fenced code blocks."""
    fence: str | None = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
                continue
            if match.group(1) == fence:
                fence = None
                continue
        if fence is None:
            yield line


def links(text: str) -> list[str]:
    """Every link target in ``text``, code blocks and code spans left out."""
    found: list[str] = []
    for raw in prose_lines(text):
        line = CODE_SPAN.sub("", raw)
        found += INLINE_LINK.findall(line)
        found += HTML_LINK.findall(line)
        reference = REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: formatting dropped, lower case, punctuation
    other than ``-`` and ``_`` removed, each space a ``-``."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text).replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading in a markdown file (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def link_problems(doc: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the links of ``doc``: targets missing, outside ``root``, or
    fragments naming no heading."""
    problems: list[str] = []
    root = root.resolve()
    for target in links(doc.read_text(encoding="utf-8")):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http:, https:, mailto: ... are not files of the repository
        path_part, _, fragment = target.partition("#")
        path_part = path_part.partition("?")[0]
        resolved = (doc.parent / path_part).resolve() if path_part else doc.resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(f"{target}: no heading #{fragment} in {resolved.name}")
    return problems


def result_files_named(text: str) -> set[str]:
    """Result files a doc names: ``benchmarks/results/NAME`` anywhere, and a bare
    ``NAME.json`` or ``NAME.csv`` in a code span."""
    names = set(RESULT_PATH.findall(text))
    for match in CODE_SPAN.finditer(text):
        inner = match.group(0).strip("`").strip()
        if BARE_RESULT.match(inner):
            names.add(inner)
    return names


# ---------------------------------------------------------------------- the README


def test_readme_has_at_most_250_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), "the README starts with its title"
    rest = list(lines[1:])
    while rest and not rest[0].strip():
        rest.pop(0)
    assert len(rest) >= 4
    assert FENCE.match(rest[0]), "the first thing after the title is a code block"
    assert tuple(rest[1:3]) == COMMANDS
    assert FENCE.match(rest[3]), "the code block holds the two commands and nothing else"


# ---------------------------------------------------------------------- links


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    assert link_problems(doc) == []


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_doc_points_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert "/work/" not in text


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_result_file_a_doc_names_exists(doc: Path) -> None:
    missing = sorted(
        name
        for name in result_files_named(doc.read_text(encoding="utf-8"))
        if not (RESULTS / name).exists()
    )
    assert missing == []


def test_the_docs_are_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in doc_files()}
    assert {"README.md", "docs/design.md", "docs/protocol.md", "docs/commands.md"} <= names
    assert any(name.startswith("docs/results/") for name in names)


# ---------------------------------------------------------------------- the checks, checked


def test_the_link_check_catches_injected_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# Title\n\n## A heading, with `code`\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "# t\n\n"
        "[fine](docs/there.md) [anchor](docs/there.md#a-heading-with-code)\n"
        "![missing](docs/images/none.png) [out](../shared/DESIGN.md)\n"
        "[bad anchor](docs/there.md#nowhere) [web](https://example.org/x.md)\n"
        "[ref]: docs/gone.md\n"
        '<img src="docs/also-gone.svg">\n'
        "`[in a span](nowhere.md)`\n"
        "```\n[in a block](nowhere.md)\n```\n"
    )
    assert link_problems(doc, tmp_path) == [
        "docs/images/none.png: no such file",
        "../shared/DESIGN.md: outside the repository",
        "docs/there.md#nowhere: no heading #nowhere in there.md",
        "docs/gone.md: no such file",
        "docs/also-gone.svg: no such file",
    ]


def test_slugs_follow_github() -> None:
    assert slug("Recovery, and the simulator's speed") == "recovery-and-the-simulators-speed"
    assert slug("`overlay sim` query") == "overlay-sim-query"
    assert slug("The layer rule") == "the-layer-rule"
    assert slug("sim_scale: 100,000 peers") == "sim_scale-100000-peers"


def test_repeated_headings_get_numbered_anchors(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# A\n\n## Run\n\n## Run\n\n```\n## not a heading\n```\n")
    assert anchors(doc) == {"a", "run", "run-1"}


def test_the_result_check_reads_paths_and_bare_names() -> None:
    text = (
        "see benchmarks/results/sim_100000.json and `soak.json`,\n"
        "`git show abc:benchmarks/results/faults.json`, not `first-seen-<pid>.json`"
    )
    assert result_files_named(text) == {"sim_100000.json", "soak.json", "faults.json"}
