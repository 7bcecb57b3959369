"""The documentation stays true to the repository: README length, links, and the commands it names."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from service.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_CHARS = 12_000
DOCS = [README, ROOT / "CONTRIBUTING.md", ROOT / "eval" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)


def prose(markdown: str) -> str:
    """The text outside code blocks and code spans, where links live."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        out.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return out


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]  # no http:, mailto: ...


def test_the_readme_is_within_its_length_budget():
    length = len(README.read_text(encoding="utf-8"))
    assert length <= README_MAX_CHARS, f"README.md has {length} characters; link depth out to docs/ instead"


def test_slugs_follow_github():
    assert slug("Running `qa eval`") == "running-qa-eval"
    assert slug("What the benchmark led to") == "what-the-benchmark-led-to"
    assert slug("HTTP API") == "http-api"
    assert anchors("# A\n## B\n## B\n```\n# not a heading\n```\n") == {"a", "b", "b-1"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path):
    broken = []
    for link in relative_links(doc):
        target, _, anchor = link.partition("#")
        file = (doc.parent / target).resolve() if target else doc
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{link}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"broken links in {doc.relative_to(ROOT)}: {broken}"


def test_the_readme_links_the_deeper_docs():
    links = set(relative_links(README))
    for doc in ("docs/performance.md", "eval/README.md", "CONTRIBUTING.md", "docs/index-format.md"):
        assert any(link.split("#")[0] == doc for link in links), f"README.md does not link {doc}"


def test_every_make_target_named_in_the_readme_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    named = set(re.findall(r"(?<![\w/-])make ([a-z][\w-]*)", README.read_text(encoding="utf-8")))
    assert named, "the README names no make target"
    assert named <= targets, f"README.md names make targets the Makefile lacks: {sorted(named - targets)}"


def test_every_qa_subcommand_named_in_the_readme_exists():
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(subparsers.choices)
    named = set(re.findall(r"(?<![\w/-])qa ([a-z][\w-]*)", README.read_text(encoding="utf-8")))
    assert named <= commands, f"README.md names qa subcommands that do not exist: {sorted(named - commands)}"
    assert {"serve", "build", "ask"} <= named, "the README should show the main commands"
