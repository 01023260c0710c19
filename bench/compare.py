"""Side by side: two or more recorded runs of the operator-latency bench and of the fleet bench.

For A/B checks of a change (the code before and after, run one after the other on the same machine):
prints the figures that must not regress and writes them as a Markdown table.

    python bench/compare.py --latency before.json after.json [--fleet before.json after.json] \\
        [--labels before,after] [--out bench/results/NAME.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from provenance import markdown as provenance_markdown
from provenance import provenance

LATENCY_ROWS = [
    ("standalone: report -> status p50 / p99 (ms)", "standalone", ("report_to_status",)),
    ("standalone: same, on the API server's clock", "standalone", ("at_api_server", "report_to_status")),
    (
        "standalone: same, once all 100 are granted",
        "standalone",
        ("report_to_status_after_first_wave_granted",),
    ),
    ("standalone: API requests per refresh (operator)", "standalone", ("api", "per_refresh")),
    ("standalone: operator CPU (s)", "standalone", ("cpu", "cpu_s", "operator")),
    ("plan: report -> status p50 / p99 (ms)", "plan", ("report_to_status",)),
    ("plan: same, on the API server's clock", "plan", ("at_api_server", "report_to_status")),
    ("plan: same, once the first wave is granted", "plan", ("report_to_status_after_first_wave_granted",)),
    ("plan: slot free -> next grant p50 / p99 (ms)", "plan", ("slot_free_to_grant",)),
    ("plan: same, on the API server's clock", "plan", ("at_api_server", "slot_free_to_grant")),
    ("plan: API requests per refresh (operator)", "plan", ("api", "per_refresh")),
    ("plan: operator CPU (s)", "plan", ("cpu", "cpu_s", "operator")),
]
FLEET_ROWS = [
    ("fleet: nodes, maxUnavailable", ("nodes", "max_unavailable")),
    ("fleet: new host boot (s)", ("boot_seconds",)),
    ("fleet: rollout wall time (s)", ("rollout_seconds",)),
    ("fleet: ideal = waves x median node time (s)", ("ideal_seconds",)),
    ("fleet: rollout / ideal", ("rollout_over_ideal",)),
    ("fleet: operator peak RSS (MiB)", ("operator_peak_rss_mib",)),
    ("fleet: operator CPU (s)", ("operator_cpu_seconds",)),
    ("fleet: succeeded / failed", ("succeeded", "failed")),
]


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict) and "p50_ms" in value:
        return f"{value['p50_ms']:.0f} / {value['p99_ms']:.0f}"
    return str(value)


def latency_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """One row per figure, one column per recorded file (its first run)."""
    rows = []
    for title, scenario, path in LATENCY_ROWS:
        rows.append([title, *(_show(_dig(r["runs"][0].get(scenario), path)) for r in runs)])
    return rows


def fleet_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for title, keys in FLEET_ROWS:
        rows.append([title, *(", ".join(_show(r.get(k)) for k in keys) for r in runs)])
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def sources(labels: list[str], docs: list[dict[str, Any]]) -> str:
    """Where each compared column comes from: its file's provenance (or that it has none)."""
    lines = []
    for label, doc in zip(labels, docs, strict=False):
        prov = doc.get("provenance")
        lines.append(f"- {label}: " + (provenance_markdown(prov) if prov else "no provenance recorded in its file."))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", nargs="*", type=Path, default=[], help="operator_latency.py JSON files")
    parser.add_argument("--fleet", nargs="*", type=Path, default=[], help="fleet_scale.py JSON files")
    parser.add_argument("--labels", default="", help="column names, comma-separated (default: the files' names)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (Markdown)")
    args = parser.parse_args()
    count = max(len(args.latency), len(args.fleet))
    if count == 0:
        parser.error("give --latency and/or --fleet files")
    labels = args.labels.split(",") if args.labels else [p.stem for p in (args.latency or args.fleet)]
    if len(labels) != count:
        parser.error(f"--labels names {len(labels)} columns for {count} files per bench")
    rows: list[list[str]] = []
    latency = [json.loads(p.read_text()) for p in args.latency]
    fleet = [json.loads(p.read_text()) for p in args.fleet]
    if latency:
        rows += latency_rows(latency)
    if fleet:
        rows += fleet_rows(fleet)
    table = markdown(["figure", *labels], rows)
    print(table)
    if args.out is not None:
        text = f"{provenance_markdown(provenance())}\n\n{table}\nThe compared runs:\n\n"
        text += sources(labels, latency) + (sources(labels, fleet) if fleet else "")
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
