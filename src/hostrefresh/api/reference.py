"""Write the API reference, docs/api.md, from the CRDs that ``hostrefresh.api.crd`` generates.

Why generated: the CRDs come from the pydantic models, which are the one source of every field's
type, default, limits and description. A hand-written reference would drift from them; this one is
rewritten by ``make api-docs`` (and ``make crds``), and ``tests/api/test_api_reference.py`` fails
while the committed page differs from what this module writes.

Every schema keyword the CRDs use is rendered; one this module does not know stops it (see
`_KNOWN_KEYWORDS`), so that a new kind of limit is never left out of the page silently.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hostrefresh.api.conditions import HOST_REFRESH_TYPES, PLAN_TYPES, TYPE_DESCRIPTIONS, Reason
from hostrefresh.api.crd import all_crds
from hostrefresh.api.hostrefresh import HostRefresh
from hostrefresh.api.names import API_VERSION
from hostrefresh.api.refreshplan import RefreshPlan

Schema = dict[str, Any]

#: The command that rewrites docs/api.md; the staleness test names it.
COMMAND: Final = "make api-docs"
#: Where the page lives in the repository.
DEFAULT_PATH: Final = Path("docs/api.md")
#: Condition types by kind; a kind missing here gets no conditions table.
CONDITION_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    HostRefresh.KIND: HOST_REFRESH_TYPES,
    RefreshPlan.KIND: PLAN_TYPES,
}
#: Patterns longer than this go below the table (a cron pattern is a thousand characters).
PATTERN_INLINE_MAX: Final = 80

_KNOWN_KEYWORDS: Final = frozenset(
    {
        "type",
        "title",
        "description",
        "default",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "format",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "pattern",
        "x-kubernetes-validations",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
    }
)


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading (the same rule tests/chart/test_alerts.py checks with)."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _text(value: str) -> str:
    """One line, safe in a table cell: whitespace collapsed, pipes escaped."""
    return " ".join(value.split()).replace("|", "\\|")


def _code(value: str) -> str:
    """``value`` as a code span in a table cell."""
    return f"`{value}`".replace("|", "\\|")


@dataclass
class _Section:
    """One object of a schema: its heading, intro, rows, and what goes below its table."""

    heading: str
    intro: str
    rows: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check_keywords(node: Schema, path: str) -> None:
    unknown = set(node) - _KNOWN_KEYWORDS
    if unknown:
        raise ValueError(
            f"{path}: schema keyword(s) {sorted(unknown)} are not rendered by hostrefresh.api.reference; "
            "teach it to show them before regenerating docs/api.md"
        )


def _type(node: Schema, path: str) -> str:
    """The field's type as the reader needs it: object links to its section, lists say their keys."""
    if node.get("x-kubernetes-int-or-string"):
        return "integer or string"
    kind = node.get("type", "")
    if kind == "array":
        inner = _type(node.get("items", {}), f"{path}[]")
        keys = node.get("x-kubernetes-list-map-keys")
        if node.get("x-kubernetes-list-type") == "map" and keys:
            return f"list of {inner}, one per {', '.join(_code(k) for k in keys)}"
        return f"list of {inner}"
    if kind == "object":
        if "properties" in node:
            return f"[object](#{anchor(path)})"
        values = node.get("additionalProperties")
        if isinstance(values, dict):
            return f"map of string to {_type(values, f'{path}{{}}')}"
        return "object"
    fmt = node.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _default(node: Schema) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    if isinstance(value, str):
        return _code(value) if value else '`""`'
    return _code(json.dumps(value))


def _range(low: Any, high: Any, unit: str = "") -> str:
    if low is not None and high is not None:
        return f"{low} to {high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    return f"at most {high}{unit}"


def _limits(node: Schema, name: str, notes: list[str]) -> str:
    """Enum, bounds, lengths, item counts and pattern; a long pattern is noted below the table."""
    parts: list[str] = []
    if "enum" in node:
        parts.append("one of " + ", ".join(_code(str(v)) for v in node["enum"]))
    if "minimum" in node or "maximum" in node:
        parts.append(_range(node.get("minimum"), node.get("maximum")))
    if "minLength" in node or "maxLength" in node:
        parts.append(_range(node.get("minLength"), node.get("maxLength"), " characters"))
    if "minItems" in node or "maxItems" in node:
        parts.append(_range(node.get("minItems"), node.get("maxItems"), " items"))
    pattern = node.get("pattern")
    if pattern is not None:
        if len(pattern) <= PATTERN_INLINE_MAX:
            parts.append("pattern " + _code(pattern))
        else:
            parts.append("pattern below the table")
            notes.append(f"Pattern of `{name}`:\n\n```\n{pattern}\n```")
    return "; ".join(parts)


def _rules(node: Schema, subject: str) -> list[str]:
    """The CEL rules' messages (what the API server answers when one is broken)."""
    out = []
    for rule in node.get("x-kubernetes-validations", []):
        where = f" (on `{rule['fieldPath'].lstrip('.')}`)" if rule.get("fieldPath") else ""
        out.append(f"- {subject}{where}: {' '.join(str(rule['message']).split())}")
    return out


def _sections(node: Schema, path: str, intro: str) -> Iterator[_Section]:
    """The section of the object at ``path``, then those of the objects in it, depth first."""
    _check_keywords(node, path)
    section = _Section(heading=path, intro=intro)
    required = set(node.get("required", []))
    nested: list[tuple[Schema, str]] = []
    rules: list[str] = _rules(node, "This object")
    for name, child in node.get("properties", {}).items():
        child_path = f"{path}.{name}"
        _check_keywords(child, child_path)
        label = f"`{name}`" + (" (required)" if name in required else "")
        cells = [
            label,
            _type(child, child_path),
            _default(child),
            _limits(child, name, section.notes),
            _text(child.get("description", "")),
        ]
        section.rows.append("| " + " | ".join(cells) + " |")
        within = list(_objects_within(child, child_path))
        if not (within and within[0][0] is child):  # an object's own rules go in its own section
            rules += _rules(child, f"`{name}`")
        nested += within
    if rules:
        section.notes.insert(
            0, "Rules the API server enforces (each line is its answer when the rule is broken):\n\n" + "\n".join(rules)
        )
    yield section
    for child, child_path in nested:
        yield from _sections(child, child_path, child.get("description", ""))


def _objects_within(node: Schema, path: str) -> Iterator[tuple[Schema, str]]:
    """The objects with fields of their own under a field: itself, its list items, its map values."""
    if node.get("type") == "object" and "properties" in node:
        yield node, path
    elif node.get("type") == "array":
        items = node.get("items", {})
        _check_keywords(items, f"{path}[]")
        if "properties" not in items and items.get("x-kubernetes-validations"):
            raise ValueError(f"{path}[]: rules on list items without fields of their own are not rendered")
        yield from _objects_within(items, f"{path}[]")
    elif isinstance(node.get("additionalProperties"), dict):
        yield from _objects_within(node["additionalProperties"], f"{path}{{}}")


def _render_section(section: _Section, level: str | None) -> list[str]:
    """The section as Markdown; ``level`` None: without a heading (a kind's top, under its own)."""
    lines = [] if level is None else [f"{level} {section.heading}", ""]
    if section.intro:
        lines += [" ".join(section.intro.split()), ""]
    if section.rows:
        lines += ["| field | type | default | limits | description |", "|---|---|---|---|---|", *section.rows, ""]
    for note in section.notes:
        lines += [note, ""]
    return lines


def _kind_header(crd: Mapping[str, Any]) -> list[str]:
    """What `kubectl` shows of the kind: names, scope, columns, field selectors."""
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    group = crd["spec"]["group"]
    lines = [
        f"`apiVersion: {group}/{version['name']}`, `kind: {names['kind']}`, "
        f"{crd['spec']['scope'].lower()}-scoped. Plural `{names['plural']}`, singular `{names['singular']}`, "
        f"short names {', '.join(_code(n) for n in names.get('shortNames', []))}, "
        f"categories {', '.join(_code(c) for c in names.get('categories', []))} "
        f"(`kubectl get {names['categories'][0] if names.get('categories') else names['plural']}` lists them). "
        f"The status is a subresource: only writes to `{names['plural']}/status` change it.",
        "",
    ]
    columns = version.get("additionalPrinterColumns", [])
    if columns:
        lines += ["`kubectl get` columns (priority 1 ones only with `-o wide`):", ""]
        lines += ["| column | from | priority | description |", "|---|---|---|---|"]
        for col in columns:
            lines.append(
                f"| {col['name']} | {_code(col['jsonPath'])} | {col.get('priority', 0)} | "
                f"{_text(col.get('description', ''))} |"
            )
        lines.append("")
    selectable = [f["jsonPath"] for f in version.get("selectableFields", [])]
    if selectable:
        lines += [
            "Field selectors (`kubectl get --field-selector`, watches): "
            + ", ".join(_code(p) for p in selectable)
            + ".",
            "",
        ]
    return lines


def _conditions(kind: str) -> list[str]:
    types = CONDITION_TYPES.get(kind)
    if not types:
        return []
    missing = [t for t in types if t not in TYPE_DESCRIPTIONS]
    if missing:
        raise ValueError(f"condition types {missing} have no entry in hostrefresh.api.conditions.TYPE_DESCRIPTIONS")
    lines = [
        f"### {kind} conditions",
        "",
        f"`status.conditions` of a {kind} holds one condition of each of these types, set from the operator's "
        "first pass on, in this order. Their reasons are listed under [Condition reasons](#condition-reasons).",
        "",
        "| type | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{t}` | {_text(TYPE_DESCRIPTIONS[t])} |" for t in types]
    return [*lines, ""]


def _reasons() -> list[str]:
    values = [v for k, v in vars(Reason).items() if k.isupper() and isinstance(v, str)]
    return [
        "## Condition reasons",
        "",
        "Every reason the operator writes into `status.conditions[].reason` (the constants of "
        "`hostrefresh.api.conditions.Reason`, for tools to match on). A refresh's `Progressing` and "
        "`Reconciling` carry its final phase (`Succeeded`, `RolledBack`, `Failed`) as the reason once it has "
        "ended. What each reason means, what the operator did and what to do: "
        "[troubleshooting](troubleshooting.md#what-each-reason-means).",
        "",
        ", ".join(f"`{v}`" for v in values) + ".",
        "",
        "The agent's reasons, in `status.agent.failureReason` of a HostRefresh (and in parentheses in the "
        "`Degraded` message the operator writes from them), are listed with their meaning under "
        "[The agent's failure reasons](troubleshooting.md#the-agents-failure-reasons).",
        "",
    ]


def render() -> str:
    """The whole page, from the CRDs and the condition types and reasons."""
    crds = all_crds()
    kinds = [crd["spec"]["names"]["kind"] for crd in crds]
    lines = [
        "# API reference",
        "",
        f"Generated from the CRDs by `{COMMAND}` (`python -m hostrefresh.api.reference docs/api.md`); do not "
        "edit by hand. To change a field, change its pydantic model in `src/hostrefresh/api/` and run "
        "`make crds`, which regenerates the CRDs and this page.",
        "",
        f"Both kinds are `{API_VERSION}`. Users (and GitOps tools, and a RefreshPlan for its HostRefreshes) "
        "write `spec`; the operator writes `status`, and the node agent only `status.agent` of its own "
        "node's HostRefresh ([operations](operations.md#one-node-hostrefresh)). On a cluster, "
        "`kubectl explain hostrefresh.spec --recursive` shows the same descriptions.",
        "",
        "Contents:",
        "",
    ]
    body: list[str] = []
    for crd, kind in zip(crds, kinds, strict=True):
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        lines.append(f"- [{kind}](#{anchor(kind)})")
        body += [f"## {kind}", "", " ".join(schema.get("description", "").split()), "", *_kind_header(crd)]
        sections = list(_sections(schema, kind, ""))
        body += _render_section(sections[0], None)
        for section in sections[1:]:
            lines.append(f"  - [{section.heading}](#{anchor(section.heading)})")
            body += _render_section(section, "###")
        conditions = _conditions(kind)
        if conditions:
            lines.append(f"  - [{kind} conditions](#{anchor(kind + ' conditions')})")
            body += conditions
    lines += ["- [Condition reasons](#condition-reasons)", "", *body, *_reasons()]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m hostrefresh.api.reference [PATH]``: write the page (default docs/api.md)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: python -m hostrefresh.api.reference [PATH]", file=sys.stderr)
        return 2
    target = Path(args[0]) if args else DEFAULT_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
