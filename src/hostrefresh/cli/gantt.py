"""The timeline's picture: a Gantt chart of a rollout drawn with matplotlib.

Its own module because matplotlib is an optional extra (``hostrefresh[timeline]``): the operator's
and the agent's images do without it, and the plugin's other verbs never load it.
"""

from __future__ import annotations

import html
import io
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from hostrefresh.api import Phase
from hostrefresh.cli.model import Obj, PlanRow, plan_view

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


def draw_to(path: Path, fmt: str, plan: Obj, rows: list[PlanRow], now: datetime, text: str) -> None:
    """Draw the rollout and write it to ``path`` as ``fmt`` (png, svg, or html with ``text`` below)."""
    fig = figure(plan, rows, now)
    try:
        write(fig, path, fmt, text)
    finally:
        plt.close(fig)
