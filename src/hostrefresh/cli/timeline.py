"""``timeline PLAN -o FILE.png|svg|html``: a Gantt chart of a rollout (matplotlib).

One row per node in start order, a bar per phase coloured by phase, the nested window drawn over
it, canaries labelled, waves separated and numbered. ``render_plan_timeline`` is also what the demo
calls at its end: it writes the picture and returns a summary of the rollout in words.
"""

from __future__ import annotations

import argparse
import html
import io
import statistics
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from lightkube import Client
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from rich.console import Console

from hostrefresh.api import Phase
from hostrefresh.cli import fetch
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.model import Obj, PlanRow, duration, plan_view, rollout

FORMATS = ("png", "svg", "html")
PHASE_COLOURS: dict[str, str] = {
    Phase.PENDING: "#d9d9d9",
    Phase.PREFLIGHT: "#9ecae1",
    Phase.PARTITIONING: "#6baed6",
    Phase.NESTED_ENABLING: "#fdd49e",
    Phase.BOOTING_TARGET: "#fdae6b",
    Phase.MIGRATING: "#f16913",
    Phase.RETIRING: "#a1d99b",
    Phase.DEVIRTUALIZING: "#74c476",
    Phase.VERIFYING: "#31a354",
    Phase.SUCCEEDED: "#006d2c",
    Phase.ROLLING_BACK: "#fb6a4a",
    Phase.ROLLED_BACK: "#cb181d",
    Phase.FAILED: "#67000d",
}
#: Terminal phases are instants; they get a marker this wide (as a share of the time axis).
MARK_SHARE = 0.006


def _format(path: Path, explicit: str | None) -> str:
    fmt = (explicit or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise CliError(
            f"cannot write {path}: unknown image format {fmt!r}", "name a .png, .svg or .html file", Exit.USAGE
        )
    return fmt


def figure(plan: Obj, rows: list[PlanRow], now: datetime) -> Figure:
    """The Gantt chart of ``plan`` (its children as ``rows``)."""
    view = plan_view(plan)
    started = [r for r in rows if r.view.segments]
    origin = min((r.view.segments[0].start for r in started), default=now)
    end = max((r.view.segments[-1].end for r in started), default=now)
    span = max((end - origin).total_seconds(), 1.0)
    height = 1.6 + 0.38 * max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(11, height), dpi=110)
    labels: list[str] = []
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        v = row.view
        labels.append(f"{v.node}{'  (canary)' if row.canary else ''}")
        for seg in v.segments:
            left = (seg.start - origin).total_seconds()
            width = seg.seconds if seg.seconds > 0 else span * MARK_SHARE
            ax.barh(y, width, left=left, height=0.6, color=PHASE_COLOURS.get(seg.phase, "#969696"), edgecolor="none")
        if v.window is not None:
            left = (v.window.start - origin).total_seconds()
            ax.add_patch(
                Rectangle(
                    (left, y - 0.38),
                    max(v.window.seconds, span * MARK_SHARE),
                    0.76,
                    fill=False,
                    edgecolor="#3f007d",
                    linewidth=1.4,
                    hatch="///",
                )
            )
        if row.wave:
            ax.text(span * 1.02, y, f"wave {row.wave}", va="center", fontsize=7, color="#555555")
    # Waves: a line between rows of different waves, and a dashed line where each wave began.
    for i in range(1, len(rows)):
        if rows[i].wave != rows[i - 1].wave:
            ax.axhline(len(rows) - i - 0.5, color="#999999", linewidth=0.6)
    firsts: dict[int, datetime] = {}
    for row in started:
        if row.view.started is not None and row.wave not in firsts:
            firsts[row.wave] = row.view.started
    for _wave, at in sorted(firsts.items()):
        ax.axvline((at - origin).total_seconds(), color="#bbbbbb", linestyle="--", linewidth=0.7, zorder=0)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(list(reversed(labels)), fontsize=8)
    ax.set_xlim(0, span * 1.1)
    ax.set_xlabel("seconds since the first refresh of the plan was created")
    ax.set_title(
        f"RefreshPlan {view.name} -> {view.target}: {view.outcome}, {view.succeeded}/{view.nodes} nodes, "
        f"{view.failed} failed, {len(firsts)} wave(s)",
        fontsize=10,
    )
    if not rows:
        ax.text(0.5, 0.5, "no node has started yet", transform=ax.transAxes, ha="center")
    seen = [p for p in PHASE_COLOURS if any(s.phase == p for r in rows for s in r.view.segments)]
    handles: list[Patch] = [Patch(color=PHASE_COLOURS[p], label=str(p)) for p in seen]
    handles.append(Patch(fill=False, edgecolor="#3f007d", hatch="///", label="nested window"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.06, 1.0), frameon=False)
    ax.grid(axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def write(fig: Figure, path: Path, fmt: str, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("png", "svg"):
        fig.savefig(path, format=fmt)
        return
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    path.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>hostrefresh timeline</title></head>\n"
        f"<body>\n<h1>hostrefresh rollout timeline</h1>\n{svg}\n<pre>{html.escape(text)}</pre>\n</body></html>\n"
    )


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
    plan = fetch.get_plan(client, plan_name)
    if plan is None:
        raise CliError(f"no RefreshPlan named {plan_name!r}", fetch.LIST_HINT, Exit.NOT_FOUND)
    now = datetime.now(UTC)
    rows = rollout(plan, fetch.list_refreshes(client, plan_name), now)
    text = summarize(plan, rows)
    fig = figure(plan, rows, now)
    try:
        write(fig, path, fmt, text)
    finally:
        plt.close(fig)
    return f"{text}\ntimeline: {path}"


def cmd_timeline(client: Client, args: argparse.Namespace, out: Console) -> int:
    out.print(render_plan_timeline(client, args.plan, Path(args.output), args.format), markup=False)
    return Exit.OK
