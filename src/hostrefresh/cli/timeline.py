"""``timeline PLAN -o FILE.png|svg|html``: a Gantt chart of a rollout (drawn by ``gantt``, with matplotlib).

One row per node in start order, a bar per phase coloured by phase, the nested window drawn over
it, canaries labelled, waves separated and numbered. ``render_plan_timeline`` is also what the demo
calls at its end: it writes the picture and returns a summary of the rollout in words.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from pathlib import Path

from lightkube import Client
from rich.console import Console

from hostrefresh.cli import fetch
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.model import Obj, PlanRow, duration, plan_view, rollout

FORMATS = ("png", "svg", "html")


def _format(path: Path, explicit: str | None) -> str:
    fmt = (explicit or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise CliError(
            f"cannot write {path}: unknown image format {fmt!r}", "name a .png, .svg or .html file", Exit.USAGE
        )
    return fmt


def summarize(plan: Obj, rows: list[PlanRow]) -> str:
    """The rollout in a few sentences: outcome, fleet time, waves, nested time per node, handovers."""
    view = plan_view(plan)
    started = [r.view for r in rows if r.view.started is not None]
    lines = [
        f"RefreshPlan {view.name} -> {view.target}: {view.outcome}, {view.succeeded}/{view.nodes} nodes refreshed"
        f", {view.failed} failed"
    ]
    if started:
        first = min(v.started for v in started if v.started is not None)
        last = max((v.completed or datetime.now(UTC)) for v in started)
        waves = max(r.wave for r in rows)
        canaries = sum(1 for r in rows if r.canary)
        lines.append(
            f"fleet time {duration((last - first).total_seconds())} in {waves} wave(s), {canaries} canary node(s) first"
        )
        nested = [v.nested_seconds for v in started]
        lines.append(f"nested per node: median {duration(statistics.median(nested))}, max {duration(max(nested))}")
        vms = [vm for v in started for vm in v.vms]
        moved = [vm for vm in vms if vm.result == "HandedOver"]
        zero = sum(1 for vm in moved if vm.path == "ZeroCopy")
        downtimes = [vm.downtime_ms for vm in moved if vm.downtime_ms is not None]
        worst = f", worst downtime {max(downtimes):.1f} ms" if downtimes else ""
        lines.append(f"{len(moved)}/{len(vms)} VMs handed over on their own machines ({zero} zero-copy){worst}")
        failed = [v for v in started if v.outcome == "Failed"]
        for v in failed:
            lines.append(f"failed: {v.node} ({v.phase}) {v.why}")
    else:
        lines.append("no node has started yet")
    return "\n".join(lines)


def render_plan_timeline(client: Client, plan_name: str, path: Path, fmt: str | None = None) -> str:
    """Write the timeline of ``plan_name`` to ``path``; return the rollout's summary (and where the picture is)."""
    fmt = _format(path, fmt)
    try:
        from hostrefresh.cli import gantt  # noqa: PLC0415 (matplotlib is an optional extra, loaded only to draw)
    except ImportError as exc:
        raise CliError(
            f"timeline images need matplotlib, which is not installed ({exc})",
            "pip install 'hostrefresh[timeline]' (or pip install matplotlib)",
            Exit.USAGE,
        ) from exc
    plan = fetch.get_plan(client, plan_name)
    if plan is None:
        raise CliError(f"no RefreshPlan named {plan_name!r}", fetch.LIST_HINT, Exit.NOT_FOUND)
    now = datetime.now(UTC)
    rows = rollout(plan, fetch.list_refreshes(client, plan_name), now)
    text = summarize(plan, rows)
    gantt.draw_to(path, fmt, plan, rows, now, text)
    return f"{text}\ntimeline: {path}"


def cmd_timeline(client: Client, args: argparse.Namespace, out: Console) -> int:
    out.print(render_plan_timeline(client, args.plan, Path(args.output), args.format), markup=False)
    return Exit.OK
