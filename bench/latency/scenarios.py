"""The scenarios, and one run of them on a fresh control plane.

- ``hr`` (standalone): ``--refreshes`` HostRefresh objects created at once, one per node, so that all
  are in flight together: report -> status.
- ``plan``: a RefreshPlan over ``--plan-nodes`` nodes with ``--max-unavailable`` slots (no canary, no
  soak), so that slots free and are taken again while the first wave runs: slot free -> grant.

Each starts its own stage (nodes, agent, operator), measures, stops it, and returns the figures
that go into the JSON as they are.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lightkube import Client

from hostrefresh.api import API_VERSION
from hostrefresh.api.phases import TERMINAL
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource

from .audit import AGENT_USER, audit_counts, audit_records, per_refresh, server_side
from .cluster import apiserver_profile, control_plane
from .fleet import PACES, Bench
from .latencies import report_figures, slot_latencies
from .processes import scrape
from .report import console, fmt
from .stats import summary
from .watch import Seen, Watcher, dump_events


def object_size(client: Client, name: str, keep: Path | None = None) -> dict[str, int]:
    """JSON size of a finished HostRefresh and of its managedFields: the API server's cost per write grows with it.

    ``keep``: also write the object there, to see what the bytes are.
    """
    body: dict[str, Any] = client.get(HostRefreshResource, name).to_dict()  # type: ignore[no-untyped-call]
    if keep is not None:
        keep.write_text(json.dumps(body, indent=1))
    managed = body["metadata"].get("managedFields") or []
    return {
        "bytes": len(json.dumps(body, separators=(",", ":"))),
        "managed_fields_bytes": len(json.dumps(managed, separators=(",", ":"))),
        "status_bytes": len(json.dumps(body.get("status") or {}, separators=(",", ":"))),
    }


def run_standalone(b: Bench, watcher: Watcher, audit: Path, n: int, tag: str) -> dict[str, Any]:
    """``n`` HostRefresh objects created at once for ``n`` nodes: report -> status latency."""
    st = b.stage(tag, n)
    try:
        target = b.target()
        nodes = st.nodes
        names = [f"{tag}-hr-{i:03d}" for i in range(n)]
        objs = [
            {
                "apiVersion": API_VERSION,
                "kind": "HostRefresh",
                "metadata": {"name": name},
                "spec": {"nodeName": node, "target": target, "partition": {"cpus": 2, "memory": "1Gi"}},
            }
            for name, node in zip(names, nodes, strict=True)
        ]
        meter = st.meter(b.cp)
        meter.start()
        if b.profile_seconds:
            apiserver_profile(b.cp, b.profile_seconds, b.workdir / f"apiserver-{tag}.pprof")
        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:  # all at once, so that all of them are in flight together
            list(pool.map(lambda o: b.client.create(HostRefreshResource.from_dict(o)), objs))
        console.log(f"[{tag}] {n} HostRefresh created in {time.time() - t0:.1f}s; waiting for all to end")

        def all_done() -> bool:
            snap = watcher.snapshot(names)
            return all(seq and seq[-1].phase in TERMINAL for seq in snap.values())

        b.wait(f"{n} refreshes end", all_done, 600, [st.op, st.agent])
        duration = time.time() - t0
        cpu = meter.stop()
        size = object_size(b.client, names[0], b.workdir / f"finished-{names[0]}.json")
        time.sleep(2.0)  # let trailing writes (node unmarks, events) land before counting
        metrics = scrape(st.port)
    finally:
        st.stop()
    t_end = time.time()
    events = watcher.snapshot(names)
    dump_events(b.workdir / f"events-{tag}.jsonl", events)
    requests = list(audit_records(audit))  # read once: request counts and the latencies' writes
    phases = Counter(seq[-1].phase for seq in events.values())
    return {
        "refreshes": n,
        "results": dict(phases),
        "max_in_flight": watcher.max_in_flight["-"],
        "duration_s": round(duration, 1),
        "cpu": cpu,
        **report_figures(events, n),
        "at_api_server": server_side(events, requests, None),
        "finished_object": size,
        "api": per_refresh(audit_counts(requests, st.started, t_end), n),
        "agent_api": per_refresh(audit_counts(requests, st.started, t_end, AGENT_USER), n),
        "operator_metrics": metrics,
    }


def run_plan(b: Bench, watcher: Watcher, audit: Path, n: int, budget: int, tag: str) -> dict[str, Any]:
    """A RefreshPlan over ``n`` nodes with ``budget`` slots: slot free -> next grant latency."""
    st = b.stage(tag, n)
    try:
        plan = {
            "apiVersion": API_VERSION,
            "kind": "RefreshPlan",
            "metadata": {"name": tag},
            "spec": {
                "nodeSelector": {"matchLabels": {"fleet": tag}},
                "target": b.target(),
                "template": {"partition": {"cpus": 2, "memory": "1Gi"}},
                "maxUnavailable": budget,
                "canary": 0,
                "soakSeconds": 0,
            },
        }
        meter = st.meter(b.cp)
        meter.start()
        if b.profile_seconds:
            apiserver_profile(b.cp, b.profile_seconds, b.workdir / f"apiserver-{tag}.pprof")
        t0 = time.time()
        b.client.create(RefreshPlanResource.from_dict(plan))

        def children() -> dict[str, list[Seen]]:
            with watcher.lock:
                names = [k for k, v in watcher.events.items() if v and v[0].plan == tag]
            return watcher.snapshot(names)

        def all_done() -> bool:
            snap = children()
            return len(snap) == n and all(seq[-1].phase in TERMINAL for seq in snap.values())

        b.wait(f"plan over {n} nodes ends", all_done, 600, [st.op, st.agent])
        duration = time.time() - t0
        cpu = meter.stop()
        time.sleep(2.0)
        metrics = scrape(st.port)
    finally:
        st.stop()
    t_end = time.time()
    events = children()
    dump_events(b.workdir / f"events-{tag}.jsonl", events)
    requests = list(audit_records(audit))  # read once: request counts and the latencies' writes
    lat = slot_latencies(events, budget)
    return {
        "nodes": n,
        "max_unavailable": budget,
        "results": dict(Counter(seq[-1].phase for seq in events.values())),
        "max_in_flight": watcher.max_in_flight[tag],
        "duration_s": round(duration, 1),
        "cpu": cpu,
        "slot_free_to_grant": summary(lat["total"]),
        **report_figures(events, budget),
        "at_api_server": server_side(events, requests, budget),
        "slot_free_to_grant_parts": {
            "free_to_child_created": summary(lat["free_to_created"]),
            "child_created_to_grant": summary(lat["created_to_grant"]),
        },
        "api": per_refresh(audit_counts(requests, st.started, t_end), n),
        "agent_api": per_refresh(audit_counts(requests, st.started, t_end, AGENT_USER), n),
        "operator_metrics": metrics,
    }


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    """One run: a fresh control plane, the bench's watch, and the scenarios ``args`` asks for."""
    workdir = Path(tempfile.mkdtemp(prefix="hostrefresh-oplat-"))
    cp, audit = control_plane(workdir, profiling=bool(args.apiserver_profile))
    try:
        cp.start()
        cp.install_crds()
        client = sync_client(cp.kubeconfig, field_manager="bench")
        b = Bench(
            cp,
            workdir,
            client,
            PACES[args.pace],
            args.seed + run,
            args.apiserver_profile,
            tuple(args.operator_arg),
            args.fleet_nice,
        )
        watcher = Watcher(sync_client(cp.kubeconfig, field_manager="bench-watch")).start()
        console.log(f"run {run}: control plane up in {workdir}")
        out: dict[str, Any] = {"run": run}
        if "hr" in args.scenarios:
            out["standalone"] = run_standalone(b, watcher, audit, args.refreshes, "hr")
            console.log(f"run {run}: standalone done: report->status {fmt(out['standalone']['report_to_status'])}")
        if "plan" in args.scenarios:
            out["plan"] = run_plan(b, watcher, audit, args.plan_nodes, args.max_unavailable, "plan")
            console.log(f"run {run}: plan done: slot->grant {fmt(out['plan']['slot_free_to_grant'])}")
        watcher.stop.set()
        return out
    finally:
        cp.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
