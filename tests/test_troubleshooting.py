"""docs/troubleshooting.md has an entry for every reason a user can meet.

The reasons are collected from the code, not listed here: every condition reason of
``hostrefresh.api.conditions.Reason`` (the operator's), and every failure reason the node agent can
report in ``status.agent.failureReason``, found in the agent's source where it raises
``StepFailedError(reason, ...)`` or calls ``_report_failure(..., reason, ...)``. A reason added to
the code without an entry fails here, naming it.

An entry is a row of a Markdown table whose first cell names the reason in backticks, with words in
its other cells.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from hostrefresh.api.conditions import Reason
from hostrefresh.api.phases import Phase

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE = REPO_ROOT / "docs" / "troubleshooting.md"
AGENT_DIR = REPO_ROOT / "src" / "hostrefresh" / "nodeagent"
SECTION = "## What each reason means"

#: Where a failure reason enters the agent's reports: the call, and the reason's position among its
#: arguments (``self._report_failure(name, hr, step, reason, message)``) or its keyword.
REASON_ARGUMENT = {
    "StepFailedError": (0, "reason"),
    "_report_failure": (3, "reason"),
    "_report": (None, "failure_reason"),
}


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _reason_argument(node: ast.Call) -> ast.expr | None:
    position, keyword = REASON_ARGUMENT[_called(node)]
    for kw in node.keywords:
        if kw.arg == keyword:
            return kw.value
    if position is not None and len(node.args) > position:
        return node.args[position]
    return None


def _names(tree: ast.Module) -> dict[str, object]:
    """The module's names a reason may be given by: its own string constants, and what it imports
    by name (``from hostrefresh.api.phases import VMS_LOST``), resolved in the module it comes from.

    Static, so that the agent's modules (which load the native L0 binding) need not be imported."""
    names: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            names.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                source = importlib.import_module(node.module) if node.module.startswith("hostrefresh.api") else None
                names[alias.asname or alias.name] = getattr(source, alias.name, None)
    return names


def agent_failure_reasons() -> dict[str, str]:
    """Reason -> the first place (file:line) the agent reports it.

    A literal counts, and so does a name (``VMS_LOST``) the module defines or imports from the API.
    Anything else (``exc.reason``, a parameter) only passes on a reason raised elsewhere.
    """
    found: dict[str, str] = {}
    for path in sorted(AGENT_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        names = _names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called(node) in REASON_ARGUMENT):
                continue
            arg = _reason_argument(node)
            value: object = None
            if isinstance(arg, ast.Constant):
                value = arg.value
            elif isinstance(arg, ast.Name):
                value = names.get(arg.id)
            if isinstance(value, str):
                found.setdefault(value, f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def operator_reasons() -> set[str]:
    return {value for name, value in vars(Reason).items() if name.isupper() and isinstance(value, str)}


def documented(markdown: str) -> dict[str, str]:
    """Reason -> its table row, for every table row whose first cell names reasons in backticks."""
    out: dict[str, str] = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 2 or set(cells[0]) <= {"-", ":", " "}:
            continue
        if not all(re.search(r"[a-z]{3}", c) for c in cells[1:]):
            continue  # an entry says something in each of its cells
        for name in re.findall(r"`([A-Z][A-Za-z0-9]+)`", cells[0]):
            out.setdefault(name, line)
    return out


def test_the_collector_finds_the_agents_reasons() -> None:
    """Were the calls renamed, the collector would find nothing and every check below would pass."""
    found = agent_failure_reasons()
    assert {"StateNotWritable", "HandBackFailed", "VMsLost", "RollbackImpossible", "AgentError"} <= set(found)


def test_every_agent_failure_reason_has_an_entry() -> None:
    entries = documented(PAGE.read_text())
    missing = {r: where for r, where in agent_failure_reasons().items() if r not in entries}
    assert not missing, (
        "docs/troubleshooting.md has no entry for the agent's failure reason(s): "
        + ", ".join(f"{r} (reported at {where})" for r, where in sorted(missing.items()))
        + ': add a row under "### The agent\'s failure reasons"'
    )


def test_every_condition_reason_has_an_entry() -> None:
    entries = documented(PAGE.read_text())
    missing = sorted(operator_reasons() - set(entries))
    assert not missing, (
        "docs/troubleshooting.md has no entry for the condition reason(s) "
        f"{', '.join(missing)} (hostrefresh.api.conditions.Reason): add a row under '{SECTION}'"
    )


def test_every_entry_names_a_reason_of_the_code() -> None:
    """A renamed or removed reason leaves no entry behind that a user would search for in vain."""
    text = PAGE.read_text()
    assert SECTION in text
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    known = operator_reasons() | set(agent_failure_reasons()) | {str(p) for p in Phase}
    stale = sorted(set(documented(section)) - known)
    assert not stale, f"docs/troubleshooting.md '{SECTION}' has entries for reasons the code never sets: {stale}"
