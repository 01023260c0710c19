"""``kubectl hostrefresh``: start, list, pause, resume and abort host refreshes.

Installed as ``kubectl-hostrefresh`` so kubectl finds it as a plugin (``kubectl hostrefresh ...``).
It only writes ``spec`` fields meant for users (``paused``, ``abort``) and creates HostRefresh
objects; everything else is the operator's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from hostrefresh.api import HostRefresh
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource


def _dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = obj.to_dict()
    return out


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), {})


def cmd_list(client: Client, args: argparse.Namespace, console: Console) -> int:
    table = Table(title="HostRefresh")
    for column in ("name", "node", "target", "phase", "nested s", "VMs", "why"):
        table.add_column(column)
    for obj in sorted((_dict(o) for o in client.list(HostRefreshResource)), key=lambda o: o["metadata"]["name"]):
        status = obj.get("status") or {}
        agent = status.get("agent") or {}
        why = _condition(status, "Degraded") if _condition(status, "Degraded").get("status") == "True" else {}
        why = why or (_condition(status, "Progressing") if status.get("phase") == "Pending" else {})
        table.add_row(
            obj["metadata"]["name"],
            obj["spec"]["nodeName"],
            obj["spec"]["target"]["version"],
            status.get("phase", "-"),
            f"{agent.get('nestedSeconds', 0):.2f}",
            str(len(agent.get("vms") or [])),
            why.get("message", ""),
        )
    console.print(table)
    plans = Table(title="RefreshPlan")
    for column in ("name", "target", "nodes", "succeeded", "active", "failed", "paused"):
        plans.add_column(column)
    for obj in (_dict(o) for o in client.list(RefreshPlanResource)):
        st = obj.get("status") or {}
        plans.add_row(
            obj["metadata"]["name"],
            obj["spec"]["target"]["version"],
            str(st.get("nodes", 0)),
            str(st.get("succeeded", 0)),
            str(st.get("active", 0)),
            str(st.get("failed", 0)),
            st.get("pausedReason") or str(st.get("paused", False)),
        )
    console.print(plans)
    return 0


def cmd_start(client: Client, args: argparse.Namespace, console: Console) -> int:
    name = args.name or f"{args.node}-{args.version}".lower().replace("_", "-")
    body = {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "metadata": {"name": name},
        "spec": {
            "nodeName": args.node,
            "target": {
                "version": args.version,
                "kernel": args.kernel,
                **({"checksum": args.checksum} if args.checksum else {}),
                **({"initrd": args.initrd} if args.initrd else {}),
                "cmdline": args.cmdline,
            },
            "partition": {"cpus": args.cpus, "memory": args.memory},
        },
    }
    try:
        HostRefresh.model_validate(body)  # the same rules as the API server, with field names
    except ValidationError as exc:
        console.print(f"[red]invalid refresh[/red]: {exc}")
        return 2
    client.create(HostRefreshResource.from_dict(body))
    console.print(f"hostrefresh {name} created for node {args.node}")
    return 0


def _patch_spec(client: Client, kind: str, name: str, spec: dict[str, Any]) -> None:
    resource = HostRefreshResource if kind == "hostrefresh" else RefreshPlanResource
    client.patch(resource, name, {"spec": spec}, patch_type=PatchType.MERGE)


def cmd_set(client: Client, args: argparse.Namespace, console: Console) -> int:
    spec = {"pause": {"paused": True}, "resume": {"paused": False}, "abort": {"abort": True}}[args.command]
    if args.command == "abort" and args.kind != "hostrefresh":
        console.print("[red]abort applies to a HostRefresh; pause a RefreshPlan instead[/red]")
        return 2
    _patch_spec(client, args.kind, args.name, spec)
    console.print(f"{args.kind} {args.name}: {args.command} requested")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl-hostrefresh", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=None, help="kubeconfig (default: $KUBECONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="HostRefreshes and RefreshPlans with their state")
    start = sub.add_parser("start", help="refresh one node")
    start.add_argument("node", help="node to refresh")
    start.add_argument("--version", required=True, help="target host version label")
    start.add_argument("--kernel", required=True, help="path of the target kernel on the node")
    start.add_argument("--initrd", default=None, help="path of the target initrd")
    start.add_argument("--cmdline", default="", help="target kernel command line")
    start.add_argument("--checksum", default=None, help="sha256:<hex> of the kernel (then initrd)")
    start.add_argument("--cpus", type=int, default=2, help="CPUs for the new host's partition")
    start.add_argument("--memory", default="4Gi", help="memory for the new host's partition")
    start.add_argument("--name", default=None, help="HostRefresh name (default: <node>-<version>)")
    for verb in ("pause", "resume", "abort"):
        cmd = sub.add_parser(verb, help=f"{verb} a HostRefresh (or pause/resume a RefreshPlan)")
        cmd.add_argument("kind", choices=["hostrefresh", "refreshplan"])
        cmd.add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    client = sync_client(args.kubeconfig)
    handlers = {"list": cmd_list, "start": cmd_start, "pause": cmd_set, "resume": cmd_set, "abort": cmd_set}
    try:
        return handlers[args.command](client, args, console)
    except ApiError as exc:
        console.print(f"[red]the API server refused[/red]: {exc.status.message}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
