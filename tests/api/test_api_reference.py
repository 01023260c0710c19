"""docs/api.md is what hostrefresh.api.reference writes from the CRDs, and it shows every field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hostrefresh.api.conditions import HOST_REFRESH_TYPES, PLAN_TYPES, TYPE_DESCRIPTIONS, Reason
from hostrefresh.api.crd import all_crds
from hostrefresh.api.reference import COMMAND, anchor, main, render

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "docs" / "api.md"


def test_committed_page_is_current() -> None:
    assert PAGE.read_text() == render(), f"docs/api.md is stale: run `{COMMAND}` and commit the result"


def _fields(schema: dict[str, object], path: str) -> list[str]:
    """Every field path under ``schema`` (items as ``[]``), as the page names its sections."""
    out: list[str] = []
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, child in props.items():
            out.append(f"{path}.{name}")
            out += _fields(child, f"{path}.{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        out += _fields(items, f"{path}[]")
    return out


def test_every_field_has_a_row_in_its_objects_section() -> None:
    """A field the renderer skipped would leave the page current but incomplete."""
    page = render()
    headings = set(re.findall(r"^#{2,3} (\S+)$", page, re.M))
    for crd in all_crds():
        kind = crd["spec"]["names"]["kind"]
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for field in _fields(schema, kind):
            parent, _, name = field.rpartition(".")
            assert parent == kind or parent in headings, f"{parent} has no section"
            section = page.split(f"\n## {kind}\n" if parent == kind else f"\n### {parent}\n", 1)[1]
            section = re.split(r"^#{2,3} ", section, maxsplit=1, flags=re.M)[0]
            assert re.search(rf"^\| `{re.escape(name)}`", section, re.M), f"{field} has no row in its section"


def test_links_point_to_headings() -> None:
    page = render()
    anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", page, re.M)}
    for target in re.findall(r"\]\(#([^)]+)\)", page):
        assert target in anchors, f"docs/api.md links to #{target}, which no heading has"


def test_condition_types_and_reasons_are_listed() -> None:
    page = render()
    for type_ in (*HOST_REFRESH_TYPES, *PLAN_TYPES):
        assert f"| `{type_}` | {TYPE_DESCRIPTIONS[type_].split()[0]}" in page
    for name, value in vars(Reason).items():
        if name.isupper():
            assert f"`{value}`" in page, f"reason {value} is not in docs/api.md"


def test_a_schema_keyword_it_cannot_show_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    crds = all_crds()
    crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["nodeName"][
        "exclusiveMaximum"
    ] = 3
    monkeypatch.setattr("hostrefresh.api.reference.all_crds", lambda: crds)
    with pytest.raises(ValueError, match=r"HostRefresh\.spec\.nodeName: schema keyword\(s\) \['exclusiveMaximum'\]"):
        render()


def test_main_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "docs" / "api.md"
    assert main([str(target)]) == 0
    assert target.read_text() == render()
    assert f"wrote {target}" in capsys.readouterr().out
    assert main(["a", "b"]) == 2
