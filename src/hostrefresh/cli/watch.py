"""``watch [PLAN|NODE]``: live progress per node and for the fleet, until the rollout ends.

Progress comes from Kubernetes watches, not from polling: one list, then one watch held open, of the
plan (or the refresh) and one of the plan's HostRefreshes (``informer.py``: resourceVersions, a re-list
on 410 Gone, a dropped watch re-established). Each change is applied to the view (``stream.py``) and
shown. A plan's line carries its ETA (``model.plan_eta``: "ETA unknown" until a node completed).

On a terminal it redraws a table (also every ``--interval``, for the clocks); otherwise (pipes, CI
logs) it prints one line per change, or with ``-o json`` one JSON document per line per change, or
with ``-o yaml`` one YAML document per change. It exits as ``status`` does.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from lightkube import Client
from rich.console import Console, Group
from rich.live import Live

from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.cli import fetch, informer
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.model import Outcome, duration, plan_eta, plan_view, refresh_view, rollout
from hostrefresh.cli.output import dump, refresh_table
from hostrefresh.cli.show import exit_for, outcome_of, summary_of
from hostrefresh.cli.stream import CHILDREN, Broken, Update, View, apply
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource


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


def _target(view: View) -> fetch.Target:
    if view.obj is None:
        raise CliError(f"{view.kind} {view.name} was deleted while watched", fetch.LIST_HINT, Exit.NOT_FOUND)
    return fetch.Target(view.kind, view.obj)


def _render(view: View, started: float) -> Group:
    elapsed = duration(time.monotonic() - started)
    target = _target(view)
    if target.kind == "RefreshPlan":
        summary = plan_view(target.obj)
        children = view.child_list()
        rows = rollout(target.obj, children)
        head = (
            f"[bold]RefreshPlan {summary.name}[/bold] -> {summary.target}: {summary.outcome}  "
            f"{summary.succeeded}/{summary.nodes} done, {summary.active} active, {summary.failed} failed, "
            f"{summary.pending} pending, wave {summary.waves}, {plan_eta(target.obj, children).text()}  ({elapsed})"
        )
        return Group(head, refresh_table([r.view for r in rows], True, title="Nodes"))
    one = refresh_view(target.obj)
    return Group(f"[bold]HostRefresh {one.name}[/bold]: {one.outcome} ({elapsed})", refresh_table([one], True))


def changes(view: View, now: datetime | None = None) -> list[tuple[str, str]]:
    """The lines of the line output, by who they are about (a line is printed when it changed)."""
    target = _target(view)
    if target.kind == "RefreshPlan":
        summary = plan_view(target.obj)
        children = view.child_list()
        lines = [
            (
                "plan",
                f"{summary.outcome} {summary.succeeded}/{summary.nodes} done, {summary.active} active, "
                f"{summary.failed} failed",
            ),
            ("eta", plan_eta(target.obj, children, now).text()),
        ]
        lines += [
            (v.node, f"{v.phase} nested {duration(v.nested_seconds)}") for v in (refresh_view(c, now) for c in children)
        ]
        return lines
    one = refresh_view(target.obj, now)
    return [(one.node, f"{one.phase} nested {duration(one.nested_seconds)}")]


@contextmanager
def _following(client: Client, target: fetch.Target, updates: queue.Queue[Update]) -> Iterator[None]:
    """The informer threads of ``target`` (its own stream, and for a plan its children's), stopped after."""
    stop = threading.Event()
    by_name = {"metadata.name": target.name}
    if target.kind == "RefreshPlan":
        informer.start(client, RefreshPlanResource, "RefreshPlan", updates.put, stop, fields=by_name)
        informer.start(client, HostRefreshResource, CHILDREN, updates.put, stop, labels={PLAN_LABEL: target.name})
    else:
        informer.start(client, HostRefreshResource, "HostRefresh", updates.put, stop, fields=by_name)
    try:
        yield
    finally:
        stop.set()


def _take(view: View, update: Update) -> View:
    if isinstance(update, Broken):
        with fetch.api_errors(f"watching {update.stream} of {view.kind} {view.name}"):
            raise update.error
    return apply(view, update)


def cmd_watch(client: Client, args: argparse.Namespace, out: Console) -> int:
    target = _pick(client, args.name)
    started = time.monotonic()
    deadline = started + args.timeout if args.timeout is not None else None
    view = View(target.kind, target.name, target.obj)
    updates: queue.Queue[Update] = queue.Queue()
    redraw = max(float(args.interval), 0.1)

    def left() -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0.0)

    def outcome() -> Outcome:
        return outcome_of(_target(view))

    def more() -> bool:
        return not outcome().done and (deadline is None or time.monotonic() < deadline)

    def next_update(wait: float) -> bool:
        """Apply the updates that arrive within ``wait`` seconds (all that queued up at once); whether any did."""
        nonlocal view
        try:
            view = _take(view, updates.get(timeout=wait))
        except queue.Empty:
            return False
        while True:
            try:
                view = _take(view, updates.get_nowait())
            except queue.Empty:
                return True

    with _following(client, target, updates):
        # First the lists of every stream, so the first output shows the whole rollout.
        listed: set[str] = set()
        while len(listed) < len(view.streams) and (deadline is None or time.monotonic() < deadline):
            try:
                update = updates.get(timeout=min(left() or 1.0, 1.0))
            except queue.Empty:
                continue
            view = _take(view, update)
            listed.add(update.stream)
        if out.is_terminal and args.output is None:
            with Live(_render(view, started), console=out, refresh_per_second=4) as live:
                while more():
                    remaining = left()
                    next_update(redraw if remaining is None else min(redraw, remaining))
                    live.update(_render(view, started))
        else:
            seen: dict[str, str] = {}
            changed = True
            while True:
                if changed:
                    _emit(view, args.output, seen, out)
                if not more():
                    break
                remaining = left()
                changed = next_update(1.0 if remaining is None else min(remaining, 1.0))
    final = outcome()
    if not final.done:
        Console(stderr=True).print(f"stopped watching after {args.timeout:g}s: {target.kind} {target.name} is {final}")
    return exit_for(final)


def _emit(view: View, fmt: str | None, seen: dict[str, str], out: Console) -> None:
    """Print what changed since the last call (``seen``: what was printed, by who)."""
    if fmt in ("json", "yaml"):
        data = summary_of(_target(view), view.child_list())
        key = json.dumps(data, sort_keys=True, default=str)
        if seen.get("") != key:
            seen[""] = key
            if fmt == "yaml":  # one document per change, as kubectl get -w -o yaml
                plain = json.loads(json.dumps(data, default=str))  # as the JSON stream has it
                out.print("---\n" + dump(plain, "yaml"), end="", markup=False, soft_wrap=True)
            else:  # one object per line: a stream that jq and line readers take as it comes
                out.print(json.dumps(data, default=str), markup=False, soft_wrap=True)
        return
    for who, line in changes(view):
        if seen.get(who) != line:
            seen[who] = line
            out.print(f"{datetime.now(UTC):%H:%M:%S} {who}: {line}", markup=False)
