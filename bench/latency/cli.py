"""The command line of ``bench/operator_latency.py``: its flags, the runs, and the JSON it writes.

The flags and the JSON's shape are an interface: bench/README.md documents the one, and
``bench/costs.py`` and the docs read the other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from provenance import provenance

from .fleet import PACES
from .report import RESULTS, TARGET_MS, console, print_tables, write_markdown
from .scenarios import one_run


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Parse the flags, run, write the JSON and the Markdown, print the tables.

    ``description``: the text ``--help`` shows (the entry point's docstring).
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refreshes", type=int, default=100, help="standalone HostRefresh objects in flight")
    parser.add_argument("--plan-nodes", type=int, default=150, help="nodes of the RefreshPlan")
    parser.add_argument("--max-unavailable", type=int, default=100, help="the plan's maxUnavailable")
    parser.add_argument("--runs", type=int, default=1, help="repetitions, each on a fresh control plane")
    parser.add_argument(
        "--pace",
        choices=sorted(PACES),
        default="host",
        help="simulated L0 call durations: 'host' (a host boot takes 10-30 s) or 'compressed' (a stress test)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="", help="a label stored with the results")
    parser.add_argument("--out", type=Path, default=RESULTS / "operator_latency.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, audit log)")
    parser.add_argument(
        "--apiserver-profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="record a kube-apiserver CPU profile of the first SECONDS of each scenario (implies --keep)",
    )
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra operator flag, e.g. --operator-arg=--max-starts-per-second=5 (repeatable)",
    )
    parser.add_argument("--scenarios", default="hr,plan", help="hr (standalone refreshes), plan, or both")
    parser.add_argument(
        "--fleet-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the simulated fleet (the one agent process standing in for every node) at nice N: in a real "
        "fleet its work is spread over the nodes and takes no CPU from the control plane or the operator",
    )
    args = parser.parse_args(argv)
    args.keep = args.keep or bool(args.apiserver_profile)
    # SIGTERM runs the clean-up (operator, agent, control plane) like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    command = "python bench/operator_latency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    prov = provenance(command_line=command.strip())
    runs = [one_run(args, i + 1) for i in range(args.runs)]
    data = {
        "provenance": prov,
        "label": args.label,
        "command": command,
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "target_ms": TARGET_MS,
        "pace": args.pace,
        "fleet_nice": args.fleet_nice,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    write_markdown(args.out.with_suffix(".md"), data)
    print_tables(runs)
    console.log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0
