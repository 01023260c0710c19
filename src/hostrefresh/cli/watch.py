"""``watch [PLAN|NODE]``: live progress per node and for the fleet, until the rollout ends.

On a terminal it redraws a table; otherwise (pipes, CI logs) it prints one line per change, or with
``-o json`` one JSON document per line per change. It exits as ``status`` does.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from lightkube import Client
from rich.console import Console, Group
from rich.live import Live

from hostrefresh.cli import fetch
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.model import Outcome, duration, plan_view, refresh_view, rollout
from hostrefresh.cli.output import dump, refresh_table
from hostrefresh.cli.show import exit_for, outcome_of, summary


def _pick(client: Client, name: str | None) -> fetch.Target:
    if name is not None:
        return fetch.resolve(client, name)
    plans = fetch.list_plans(client)
    running = [p for p in plans if not outcome_of(fetch.Target("RefreshPlan", p)).done] or plans
    if len(running) != 1:
        raise CliError(
            f"watch needs a PLAN or NODE: {len(running)} RefreshPlans could be meant",
            "kubectl hostrefresh watch PLAN|NODE",
            Exit.USAGE,
        )
    return fetch.Target("RefreshPlan", running[0])


def _render(client: Client, target: fetch.Target, started: float) -> Group:
    elapsed = duration(time.monotonic() - started)
    if target.kind == "RefreshPlan":
        view = plan_view(target.obj)
        rows = rollout(target.obj, fetch.list_refreshes(client, target.name))
        head = (
            f"[bold]RefreshPlan {view.name}[/bold] -> {view.target}: {view.outcome}  "
            f"{view.succeeded}/{view.nodes} done, {view.active} active, {view.failed} failed, "
            f"{view.pending} pending, wave {view.waves}  ({elapsed})"
        )
        return Group(head, refresh_table([r.view for r in rows], True, title="Nodes"))
    one = refresh_view(target.obj)
    return Group(f"[bold]HostRefresh {one.name}[/bold]: {one.outcome} ({elapsed})", refresh_table([one], True))


def _changes(client: Client, target: fetch.Target) -> list[tuple[str, str]]:
    if target.kind == "RefreshPlan":
        view = plan_view(target.obj)
        lines = [
            ("plan", f"{view.outcome} {view.succeeded}/{view.nodes} done, {view.active} active, {view.failed} failed")
        ]
        lines += [
            (v.node, f"{v.phase} nested {duration(v.nested_seconds)}")
            for v in (refresh_view(c) for c in fetch.list_refreshes(client, target.name))
        ]
        return lines
    one = refresh_view(target.obj)
    return [(one.node, f"{one.phase} nested {duration(one.nested_seconds)}")]


def cmd_watch(client: Client, args: argparse.Namespace, out: Console) -> int:
    target = _pick(client, args.name)
    want = "plan" if target.kind == "RefreshPlan" else "refresh"
    started = time.monotonic()
    deadline = started + args.timeout if args.timeout is not None else None
    outcome: Outcome = outcome_of(target)

    def refresh() -> None:
        nonlocal target, outcome
        time.sleep(args.interval)
        target = fetch.resolve(client, target.name, want)
        outcome = outcome_of(target)

    def more() -> bool:
        return not outcome.done and (deadline is None or time.monotonic() < deadline)

    if out.is_terminal and args.output is None:
        with Live(_render(client, target, started), console=out, refresh_per_second=4) as live:
            while more():
                refresh()
                live.update(_render(client, target, started))
    else:
        seen: dict[str, str] = {}
        first = True
        while first or more():
            if not first:
                refresh()
            first = False
            if args.output in ("json", "yaml"):
                data = summary(client, target)
                key = json.dumps(data, sort_keys=True, default=str)
                if seen.get("") != key:
                    seen[""] = key
                    if args.output == "yaml":  # one document per change, as kubectl get -w -o yaml
                        plain = json.loads(json.dumps(data, default=str))  # as the JSON stream has it
                        out.print("---\n" + dump(plain, "yaml"), end="", markup=False, soft_wrap=True)
                    else:  # one object per line: a stream that jq and line readers take as it comes
                        out.print(json.dumps(data, default=str), markup=False, soft_wrap=True)
                continue
            for who, line in _changes(client, target):
                if seen.get(who) != line:
                    seen[who] = line
                    out.print(f"{datetime.now(UTC):%H:%M:%S} {who}: {line}", markup=False)
    if not outcome.done:
        Console(stderr=True).print(
            f"stopped watching after {args.timeout:g}s: {target.kind} {target.name} is {outcome}"
        )
    return exit_for(outcome)
