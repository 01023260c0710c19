"""What a run reports: the tables printed at the end, and the Markdown written beside the JSON.

The JSON (written by ``cli``) is what other tools read (``bench/costs.py``); the Markdown is for
people and, for the default output file, ends with ``operator_latency.notes.md`` (the verdict and
how the figures came about).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from provenance import markdown as provenance_markdown

from .audit import AGENT_USER, OPERATOR_USER

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
TARGET_MS = 200.0
console = Console()


def fmt(s: dict[str, Any]) -> str:
    """A summary as one cell of the printed table (and of the log lines)."""
    if not s.get("n"):
        return "no samples"
    return f"p50 {s['p50_ms']:.0f} / p99 {s['p99_ms']:.0f} / max {s['max_ms']:.0f} ms (n={s['n']})"


def _dig(r: dict[str, Any], *path: str) -> Any:
    """``r[path...]`` or {} when a scenario was not run."""
    cur: Any = r
    for key in path:
        cur = cur.get(key, {}) if isinstance(cur, dict) else {}
    return cur


def _cell(s: dict[str, Any]) -> str:
    return f"{s['p50_ms']} / {s['p99_ms']} / {s['max_ms']} ms ({s['n']})" if s.get("n") else "-"


def print_tables(runs: list[dict[str, Any]]) -> None:
    table = Table(title="operator latency (watch receipt)")
    for col in ("run", "report -> status", "slot free -> grant", "in flight", "API req/refresh (hr / plan)"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            str(r["run"]),
            fmt(_dig(r, "standalone", "report_to_status")),
            fmt(_dig(r, "plan", "slot_free_to_grant")),
            f"{_dig(r, 'standalone').get('max_in_flight', '-')} / {_dig(r, 'plan').get('max_in_flight', '-')}",
            f"{_dig(r, 'standalone', 'api').get('per_refresh', '-')} / {_dig(r, 'plan', 'api').get('per_refresh', '-')}",
        )
    console.print(table)
    last = runs[-1]
    for key in ("standalone", "plan"):
        if key not in last:
            continue
        t = Table(title=f"API requests by {OPERATOR_USER} ({key}, run {last['run']})")
        t.add_column("verb resource")
        t.add_column("count", justify="right")
        t.add_column("per refresh", justify="right")
        for k, v in last[key]["api"]["by_verb_resource"].items():
            t.add_row(k, str(v["count"]), f"{v['per_refresh']:.2f}")
        console.print(t)


SCENARIOS = (("standalone", "100 HostRefresh created at once"), ("plan", "RefreshPlan, 150 nodes, maxUnavailable 100"))


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    runs = data["runs"]
    lines = [
        "# Operator latency with 100 refreshes in flight",
        "",
        f"`{data['command']}` on {data['machine']['cpus']} shared cores ({data['machine']['platform']}), "
        f"{data['recorded_at']}{' (' + data['label'] + ')' if data['label'] else ''}, pace `{data['pace']}`. "
        f"Target: p99 < {TARGET_MS:.0f} ms for both latencies. Cells: p50 / p99 / max ms (samples).",
        "",
        *([provenance_markdown(data["provenance"]), ""] if data.get("provenance") else []),
        "| run | scenario | report → status | same, once the first wave is granted | slot free → grant "
        "| max in flight | requests per refresh: operator / agent |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            sc = _dig(r, key)
            if not sc:
                continue
            lines.append(
                f"| {r['run']} | {title} | {_cell(_dig(sc, 'report_to_status'))} "
                f"| {_cell(_dig(sc, 'report_to_status_after_first_wave_granted'))} "
                f"| {_cell(_dig(sc, 'slot_free_to_grant'))} | {sc.get('max_in_flight', '-')} "
                f"| {_dig(sc, 'api').get('per_refresh', '-')} / {_dig(sc, 'agent_api').get('per_refresh', '-')} |"
            )
    lines += [
        "",
        "Where the time goes:",
        "",
        "| run | scenario | agent report → bench watch | bench watch → operator status | slot free → child created "
        "| child created → Proceed |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            sc = _dig(r, key)
            if not sc:
                continue
            parts = [
                _dig(sc, "report_to_status_parts", "agent_report_to_watch_receipt"),
                _dig(sc, "report_to_status_parts", "watch_receipt_to_operator_status"),
                _dig(sc, "slot_free_to_grant_parts", "free_to_child_created"),
                _dig(sc, "slot_free_to_grant_parts", "child_created_to_grant"),
            ]
            lines.append(f"| {r['run']} | {title} | " + " | ".join(_cell(c) for c in parts) + " |")
    lines += [
        "",
        "The same two latencies on the API server's clock (audit log): from the agent's report being stored to the "
        "operator's status that reflects it being stored, and from a child's final phase being stored to the next "
        "child's Proceed being stored. They leave out when the agent and the bench's watcher got a CPU:",
        "",
        "| run | scenario | report → status | slot free → grant | reports not matched to writes |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            srv = _dig(r, key, "at_api_server")
            if srv:
                lines.append(
                    f"| {r['run']} | {title} | {_cell(_dig(srv, 'report_to_status'))} "
                    f"| {_cell(_dig(srv, 'slot_free_to_grant'))} | {srv.get('unmatched_reports', '-')} |"
                )
    names = ("kube-apiserver", "etcd", "operator", "agent", "bench")
    lines += [
        "",
        "CPU used while the scenario ran (cores, averaged over its duration; the agent process simulates every node),"
        " and the machine's speed just before it (a fixed Python loop, best / median of 9, ms: the cores are shared"
        " with other machines, so the same work takes longer at busy times):",
        "",
        "| run | scenario | duration | " + " | ".join(names) + " | speed loop |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            cpu = _dig(r, key, "cpu")
            if cpu:
                cores = cpu["cores"]
                cells = " | ".join(str(cores.get(n, "-")) for n in names)
                speed = cpu.get("speed_before")
                loop = f"{speed['best_ms']} / {speed['median_ms']}" if speed else "-"
                lines.append(f"| {r['run']} | {title} | {cpu['wall_s']} s | {cells} | {loop} |")
    last = runs[-1]
    size = _dig(last, "standalone", "finished_object")
    if size:
        lines += [
            "",
            f"A finished HostRefresh is {size['bytes']} bytes of JSON ({size['status_bytes']} of status, "
            f"{size['managed_fields_bytes']} of managedFields).",
        ]
    for key, title in SCENARIOS:
        if key not in last:
            continue
        for api_key, user in (("api", OPERATOR_USER), ("agent_api", AGENT_USER)):
            api = last[key].get(api_key)
            if not api:
                continue
            lines += [
                "",
                f"API requests by `{user}` (audit log), {title}, run {last['run']}: "
                f"{api['requests']} for {api['refreshes']} refreshes = **{api['per_refresh']} per refresh** "
                f"(results: {last[key]['results']})",
                "",
                "| verb resource | count | per refresh |",
                "|---|---|---|",
            ]
            lines += [f"| {k} | {v['count']} | {v['per_refresh']} |" for k, v in api["by_verb_resource"].items()]
    notes = RESULTS / "operator_latency.notes.md"
    if notes.exists() and path.resolve() == notes.with_name("operator_latency.md"):
        lines += ["", notes.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")
