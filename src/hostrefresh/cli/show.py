"""Read-only verbs: ``get``, ``status`` (optionally waiting) and ``describe``."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from lightkube import Client
from rich.console import Console
from rich.table import Table

from hostrefresh.cli import fetch, selector
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.model import (
    Obj,
    Outcome,
    duration,
    plan_eta,
    plan_outcome,
    plan_view,
    refresh_outcome,
    refresh_view,
    rollout,
)
from hostrefresh.cli.output import as_list, dump, names, plan_table, refresh_table


def cmd_get(client: Client, args: argparse.Namespace, out: Console) -> int:
    """Plans and refreshes: every one, or NAME (a plan with its refreshes, or one refresh or node)."""
    if args.name and args.selector is not None:
        raise CliError(
            f"get {args.name} -l {args.selector}: a NAME and a selector do not go together (as in kubectl)",
            "give either NAME or -l SELECTOR",
            Exit.USAGE,
        )
    if args.name:
        target = fetch.resolve(client, args.name)
        if target.kind == "RefreshPlan":
            plans, refreshes = [target.obj], fetch.list_refreshes(client, target.name)
        else:
            plans, refreshes = [], [target.obj]
    else:
        selected = selector.parse(args.selector) if args.selector is not None else []
        plans, refreshes = fetch.list_plans(client, selected), fetch.list_refreshes(client, None, selected)
    fmt = args.output
    if fmt in ("json", "yaml"):
        out.print(dump(as_list(plans + refreshes), fmt), end="", markup=False)
        return Exit.OK
    if fmt == "name":
        out.print(names(plans + refreshes), end="", markup=False)
        return Exit.OK
    wide = fmt == "wide"
    if plans:
        out.print(plan_table([plan_view(p) for p in plans], wide))
    if refreshes or not plans:
        out.print(refresh_table([refresh_view(r) for r in refreshes], wide))
    if not plans and not refreshes:
        out.print("No RefreshPlans or HostRefreshes found.")
    return Exit.OK


def outcome_of(target: fetch.Target) -> Outcome:
    return plan_outcome(target.obj) if target.kind == "RefreshPlan" else refresh_outcome(target.obj)


def exit_for(outcome: Outcome) -> Exit:
    if outcome == Outcome.SUCCEEDED:
        return Exit.OK
    if outcome in (Outcome.FAILED, Outcome.HALTED):
        return Exit.FAILED
    return Exit.NOT_DONE


def summary(client: Client, target: fetch.Target) -> Obj:
    """The status report of a plan (with its nodes) or of one refresh, as data."""
    children = fetch.list_refreshes(client, target.name) if target.kind == "RefreshPlan" else []
    return summary_of(target, children)


def summary_of(target: fetch.Target, children: list[Obj], now: datetime | None = None) -> Obj:
    """``summary`` of a plan whose children are known (pure)."""
    now = now or datetime.now(UTC)
    if target.kind == "RefreshPlan":
        rows = rollout(target.obj, children, now)
        return {
            "kind": "RefreshPlan",
            **plan_view(target.obj).to_json(),
            "eta": plan_eta(target.obj, children, now).to_json(),
            "refreshes": [{**r.view.to_json(), "wave": r.wave, "canary": r.canary} for r in rows],
        }
    return {"kind": "HostRefresh", **refresh_view(target.obj, now).to_json()}


def print_status(client: Client, target: fetch.Target, fmt: str | None, out: Console) -> None:
    if fmt in ("json", "yaml"):
        out.print(dump(summary(client, target), fmt), end="", markup=False)
        return
    if fmt == "name":
        out.print(names([target.obj]), end="", markup=False)
        return
    wide = fmt == "wide"
    if target.kind == "RefreshPlan":
        view = plan_view(target.obj)
        out.print(f"RefreshPlan {view.name}: {view.outcome} ({view.succeeded}/{view.nodes} nodes run {view.target})")
        if view.message:
            out.print(f"  {view.message}", markup=False)
        children = fetch.list_refreshes(client, target.name)
        if children:
            out.print(refresh_table([r.view for r in rollout(target.obj, children)], wide, title="Nodes"))
        return
    one = refresh_view(target.obj)
    out.print(f"HostRefresh {one.name} (node {one.node}): {one.outcome}, phase {one.phase}")
    if one.why:
        out.print(f"  {one.why}", markup=False)
    if one.window is not None:
        state = "nested now" if one.window.ongoing else "was nested"
        out.print(f"  {state} for {duration(one.window.seconds)}")


def cmd_status(client: Client, args: argparse.Namespace, out: Console) -> int:
    """One plan, refresh or node; with --timeout, wait until it ends (0 success, 1 failure, 3 timeout)."""
    if args.name is None:
        plans = fetch.list_plans(client)
        if len(plans) != 1:
            listed = ", ".join(p["metadata"]["name"] for p in plans) or "none"
            raise CliError(
                f"status needs a PLAN or NODE: the cluster has {len(plans)} RefreshPlans ({listed})",
                "kubectl hostrefresh status PLAN|NODE",
                Exit.USAGE,
            )
        target = fetch.Target("RefreshPlan", plans[0])
    else:
        target = fetch.resolve(client, args.name)
    deadline = time.monotonic() + args.timeout if args.timeout is not None else None
    outcome = outcome_of(target)
    while deadline is not None and not outcome.done and time.monotonic() < deadline:
        time.sleep(min(args.interval, max(deadline - time.monotonic(), 0.0)))
        target = fetch.resolve(client, target.name, "plan" if target.kind == "RefreshPlan" else "refresh")
        outcome = outcome_of(target)
    print_status(client, target, args.output, out)
    if deadline is not None and not outcome.done:
        Console(stderr=True).print(f"timed out after {args.timeout:g}s: {target.kind} {target.name} is {outcome}")
    return exit_for(outcome)


def cmd_describe(client: Client, args: argparse.Namespace, out: Console) -> int:
    """One refresh's story: phases with durations, nested window, VM handovers, what stopped it, Events."""
    target = fetch.resolve(client, args.name, None if args.plan_ok else "refresh")
    if target.kind == "RefreshPlan":
        return describe_plan(client, target, args.output, out)
    obj = target.obj
    view = refresh_view(obj, datetime.now(UTC))
    events = fetch.events(client, "HostRefresh", view.name, obj["metadata"].get("uid"))
    if args.output in ("json", "yaml"):
        data = {"kind": "HostRefresh", **view.to_json(), "events": [_event_json(e) for e in events]}
        out.print(dump(data, args.output), end="", markup=False)
        return Exit.OK
    out.print(f"Name:        {view.name}", markup=False)
    out.print(f"Node:        {view.node}", markup=False)
    out.print(f"Target:      {view.target}", markup=False)
    out.print(f"Plan:        {view.plan or '-'}", markup=False)
    out.print(f"Phase:       {view.phase} ({view.outcome})", markup=False)
    if view.why:
        out.print(f"Why:         {view.why}", markup=False)
    phases = Table(title="Phases", title_justify="left", box=None, pad_edge=False)
    for column in ("PHASE", "STARTED", "DURATION", ""):
        phases.add_column(column)
    for seg in view.segments:
        nested = ""
        if view.window is not None and seg.start < view.window.end and seg.end > view.window.start:
            nested = "nested"
        phases.add_row(seg.phase, seg.start.strftime("%H:%M:%S.%f")[:-3], duration(seg.seconds), nested)
    out.print(phases)
    if view.window is not None:
        state = "ongoing" if view.window.ongoing else "ended"
        out.print(
            f"Nested window: {view.window.start:%H:%M:%S} - {view.window.end:%H:%M:%S}, "
            f"{duration(view.window.seconds)} ({state})",
            markup=False,
        )
    else:
        out.print("Nested window: none")
    vms = Table(title="VM handovers", title_justify="left", box=None, pad_edge=False)
    for column in ("VM", "RESULT", "PATH", "DOWNTIME", "TOTAL", "MESSAGE"):
        vms.add_column(column)
    for vm in view.vms:
        downtime = duration(vm.downtime_ms / 1000) if vm.downtime_ms is not None else "-"
        total = duration(vm.total_ms / 1000) if vm.total_ms is not None else "-"
        vms.add_row(vm.name, vm.result, vm.path or "-", downtime, total, vm.message)
    out.print(vms if view.vms else "VM handovers: none reported")
    if view.stopping_condition:
        c = view.stopping_condition
        out.print(
            f"Stopped by: {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message', '')}", markup=False
        )
    print_events(events, out)
    return Exit.OK


def describe_plan(client: Client, target: fetch.Target, fmt: str | None, out: Console) -> int:
    events = fetch.events(client, "RefreshPlan", target.name, target.obj["metadata"].get("uid"))
    if fmt in ("json", "yaml"):
        data = {**summary(client, target), "events": [_event_json(e) for e in events]}
        out.print(dump(data, fmt), end="", markup=False)
        return Exit.OK
    print_status(client, target, "wide", out)
    print_events(events, out)
    return Exit.OK


def _event_json(e: Obj) -> Obj:
    return {
        "type": e.get("type"),
        "reason": e.get("reason"),
        "message": e.get("message"),
        "time": e.get("lastTimestamp") or e.get("eventTime"),
        "count": max(int(e.get("count") or 1), int((e.get("series") or {}).get("count") or 1)),
    }


def print_events(events: list[Obj], out: Console) -> None:
    if not events:
        out.print("Events: none")
        return
    table = Table(title="Events", title_justify="left", box=None, pad_edge=False)
    for column in ("TYPE", "REASON", "TIME", "COUNT", "MESSAGE"):
        table.add_column(column)
    for e in events:
        data = _event_json(e)
        table.add_row(
            str(data["type"]), str(data["reason"]), str(data["time"]), str(data["count"]), str(data["message"])
        )
    out.print(table)
