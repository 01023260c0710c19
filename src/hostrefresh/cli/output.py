"""Output formats (``-o json|yaml|wide|name``) and the tables every verb shares."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from hostrefresh.api import GROUP, HostRefresh, RefreshPlan
from hostrefresh.cli.model import Obj, PlanView, RefreshView, duration

FORMATS = ("json", "yaml", "wide", "name")
PLURAL = {kind.KIND: f"{kind.SINGULAR}.{GROUP}" for kind in (RefreshPlan, HostRefresh)}


def dump(data: Any, fmt: str) -> str:
    """JSON (indented, like kubectl) or YAML text of ``data``."""
    if fmt == "yaml":
        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return json.dumps(data, indent=2, default=str) + "\n"


def as_list(items: list[Obj]) -> Obj:
    """Several objects as kubectl prints them: a v1 List."""
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def names(items: list[Obj]) -> str:
    return "".join(f"{PLURAL[o.get('kind', 'HostRefresh')]}/{o['metadata']['name']}\n" for o in items)


def plan_table(plans: list[PlanView], wide: bool) -> Table:
    table = Table(title="RefreshPlans", title_justify="left", box=None, pad_edge=False)
    columns = ["NAME", "TARGET", "STATUS", "NODES", "DONE", "ACTIVE", "FAILED", "PENDING"]
    if wide:
        columns += ["WAVES", "MESSAGE"]
    for column in columns:
        table.add_column(column, no_wrap=column != "MESSAGE")
    for p in plans:
        row = [p.name, p.target, str(p.outcome), str(p.nodes), str(p.succeeded), str(p.active), str(p.failed)]
        row.append(str(p.pending))
        if wide:
            row += [str(p.waves), p.message]
        table.add_row(*row)
    return table


def refresh_table(views: list[RefreshView], wide: bool, title: str = "HostRefreshes") -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    columns = ["NAME", "NODE", "TARGET", "SCOPE", "PHASE", "NESTED", "VMS", "AGE"]
    if wide:
        columns += ["PLAN", "STEP", "WHY"]
    for column in columns:
        table.add_column(column, no_wrap=column != "WHY")
    for v in views:
        moved = sum(1 for vm in v.vms if vm.result == "HandedOver")
        elapsed = None
        if v.started is not None:
            end = v.completed or (v.segments[-1].end if v.segments else v.started)
            elapsed = (end - v.started).total_seconds()
        row = [
            v.name,
            v.node,
            v.target,
            v.scope,
            v.phase,
            duration(v.nested_seconds),
            f"{moved}/{len(v.vms)}",
            duration(elapsed),
        ]
        if wide:
            row += [v.plan or "-", v.agent_step or "-", v.why]
        table.add_row(*row)
    return table


#: Width of the tables when stdout is no terminal and $COLUMNS is unset: pipes and logs get whole rows
#: (like kubectl's), not rows cut to 80 columns.
PIPE_WIDTH = 400


def console() -> Console:
    """stdout, no colours unless a terminal, wide enough for the tables."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(highlight=False, soft_wrap=True, width=width)


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)
