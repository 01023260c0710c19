"""Relative links between the Markdown pages lead somewhere: to a file that exists, and to a heading
that exists in it. The pages link into each other by section (api.md's reasons to troubleshooting's
entries, upgrade.md to the recovery steps), and a renamed heading breaks such a link silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hostrefresh.api.reference import anchor

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [REPO_ROOT / "README.md", REPO_ROOT / "charts" / "hostrefresh" / "README.md", *REPO_ROOT.glob("docs/*.md")]
)


def _prose(markdown: str) -> str:
    """The page without fenced blocks and code spans, where brackets are code, not links."""
    without_blocks = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", without_blocks)


def _anchors(markdown: str) -> set[str]:
    return {anchor(title.strip()) for title in re.findall(r"^#+ (.+)$", _prose(markdown), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())):
        if re.match(r"[a-z]+:", link):
            continue  # http:, https:, mailto:
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no such file)")
        elif fragment and target.suffix == ".md" and fragment not in _anchors(target.read_text()):
            broken.append(f"{link} (no such heading)")
    assert not broken, f"{page.relative_to(REPO_ROOT)} links nowhere: {', '.join(broken)}"
