"""The operator-latency bench's analysis (bench/latency/) on a small synthetic run with known answers.

No control plane: two plan children as the bench's watch would record them, and the audit log of
their writes. Guards the figures bench/results/operator_latency.json is made of.
"""

from __future__ import annotations

import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
T0 = 1_700_000_000.0  # the synthetic run's clock: seconds after this


@pytest.fixture(scope="module")
def lat() -> SimpleNamespace:
    """The package's analysis modules (bench/ is on sys.path only while they are imported)."""
    sys.path.insert(0, str(BENCH))
    try:
        return SimpleNamespace(
            **{m: importlib.import_module(f"latency.{m}") for m in ("audit", "latencies", "stats", "watch")}
        )
    finally:
        sys.path.remove(str(BENCH))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(T0 + t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _events(lat: SimpleNamespace) -> dict[str, list[Any]]:
    """c0 runs and succeeds (skipping phases), freeing the plan's one slot; c1 takes it, fails and rolls back."""
    seen = lat.watch.Seen

    def ev(t: float, phase: str | None, directive: str | None, report: tuple[float, str, str] | None = None) -> Any:
        stamp, step, state = report or (None, None, None)
        return seen(T0 + t, phase, directive, None if stamp is None else _iso(stamp), step, state, "p")

    running = (0.45, "Preflight", "Running")  # the status shows it already
    partitioning = (1.0, "Partitioning", "Running")
    verified = (2.0, "Verifying", "Done")  # implies Succeeded
    return {
        "c0": [
            ev(0.0, None, None),
            ev(0.5, "Preflight", "Proceed", running),
            ev(1.1, "Preflight", "Proceed", partitioning),
            ev(1.3, "Partitioning", "Proceed", partitioning),
            ev(2.05, "Partitioning", "Proceed", verified),
            ev(2.25, "Succeeded", "Proceed", verified),
        ],
        "c1": [
            ev(2.3, None, None),
            ev(2.4, "Pending", "Wait"),
            ev(2.5, "Preflight", "Proceed"),
            ev(3.1, "Preflight", "Proceed", (3.0, "Verifying", "Failed")),  # a failure: not a phase report
            ev(3.2, "RollingBack", "RollBack", (3.0, "Verifying", "Failed")),
            ev(3.6, "RollingBack", "RollBack", (3.5, "RollingBack", "Done")),  # RolledBack: no forward rank
            ev(3.7, "RolledBack", "RollBack", (3.5, "RollingBack", "Done")),
        ],
    }


def _record(n: int, user: str, verb: str, received: float, resource: str | None, name: str = "", **kw: Any) -> Any:
    ref = {"resource": resource, "name": name} if resource else {}
    if kw.get("sub"):
        ref["subresource"] = kw["sub"]
    return {
        "auditID": f"id-{n}",
        "verb": verb,
        "user": {"username": user},
        "objectRef": ref,
        "responseStatus": {"code": kw.get("code", 200)},
        "requestReceivedTimestamp": _iso(received),
        "stageTimestamp": _iso(received + kw.get("took", 0.01)),
    }


def _audit(lat: SimpleNamespace) -> list[dict[str, Any]]:
    op, agent = lat.audit.OPERATOR_USER, lat.audit.AGENT_USER
    writes = [
        (op, "c0", 0.45),  # grant
        (agent, "c0", 0.451),
        (agent, "c0", 1.0),
        (op, "c0", 1.25),
        (agent, "c0", 2.0),
        (op, "c0", 2.2),  # Succeeded: the slot frees
        (op, "c1", 2.45),  # grant
        (op, "c1", 3.15),
        (op, "c1", 3.65),
    ]
    records = [_record(i, u, "patch", t, "hostrefreshes", name, sub="status") for i, (u, name, t) in enumerate(writes)]
    records += [
        _record(100, op, "create", 1.0, "events"),
        _record(101, op, "patch", 1.0, "nodes", "n0", code=409),
        _record(102, op, "get", 0.1, None),
        _record(103, agent, "update", 1.0, "leases", "n0"),
    ]
    return records


def test_summary_and_percentile(lat: SimpleNamespace) -> None:
    assert lat.stats.summary([]) == {"n": 0}
    assert lat.stats.percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert lat.stats.summary([0.1, 0.2, 0.3]) == {
        "n": 3,
        "p50_ms": 200.0,
        "p90_ms": 280.0,
        "p99_ms": 298.0,
        "max_ms": 300.0,
        "min_ms": 100.0,
    }


def test_watch_receipt_latencies(lat: SimpleNamespace) -> None:
    events = _events(lat)
    assert lat.latencies.implied_phase("Verifying", "Done") == "Succeeded"
    assert lat.latencies.implied_phase("RollingBack", "Done") == "RolledBack"
    figures = lat.latencies.report_figures(events, 1)
    assert figures["reports_already_reflected"] == 1
    assert figures["report_to_status"]["n"] == 2
    assert (figures["report_to_status"]["min_ms"], figures["report_to_status"]["max_ms"]) == (250.0, 300.0)
    parts = figures["report_to_status_parts"]
    assert parts["watch_receipt_to_operator_status"]["max_ms"] == 200.0
    assert figures["report_to_status_after_first_wave_granted"]["n"] == 2
    slots = lat.latencies.slot_latencies(events, 1)
    assert [round(v, 3) for v in slots["total"]] == [0.25]
    assert [round(v, 3) for v in slots["free_to_created"]] == [0.05]


def test_watch_counts_refreshes_in_flight(lat: SimpleNamespace) -> None:
    """Started (Proceed or RollBack) and not terminal, per plan ("-": standalone refreshes)."""
    watcher = lat.watch.Watcher(client=None)
    for t, name, plan, phase, directive in [
        (0, "a", "p", None, None),
        (1, "a", "p", "Preflight", "Proceed"),
        (2, "b", "p", "Pending", "Wait"),
        (3, "b", "p", "Preflight", "Proceed"),
        (4, "a", "p", "Succeeded", "Proceed"),
        (5, "b", "p", "RollingBack", "RollBack"),
        (6, "c", None, "Preflight", "Proceed"),
    ]:
        labels = {"hostrefresh.io/plan": plan} if plan else {}
        watcher._observe(
            t, {"metadata": {"name": name, "labels": labels}, "status": {"phase": phase, "directive": directive}}
        )
    assert dict(watcher.max_in_flight) == {"p": 2, "-": 1}


def test_audit_log(lat: SimpleNamespace, tmp_path: Path) -> None:
    records = _audit(lat)
    log = tmp_path / "audit.log"
    log.write_text("".join(json.dumps(r) + "\n" for r in records for _stage in range(2)))  # a line per stage
    read = list(lat.audit.audit_records(log))
    assert read == records
    server = lat.audit.server_side(_events(lat), read, 1)
    assert server["unmatched_reports"] == 0
    assert (server["report_to_status"]["min_ms"], server["report_to_status"]["max_ms"]) == (200.0, 250.0)
    assert server["slot_free_to_grant"]["max_ms"] == 250.0
    counts = lat.audit.per_refresh(lat.audit.audit_counts(read, T0, T0 + 10), 2)
    assert counts["requests"] == 9
    assert counts["per_refresh"] == 4.5
    assert counts["by_verb_resource"]["patch hostrefreshes/status"] == {"count": 6, "per_refresh": 3.0}
    assert counts["by_verb_resource"]["patch nodes → 409"]["count"] == 1
    assert counts["by_verb_resource"]["get (API discovery)"]["count"] == 1
    agent = lat.audit.per_refresh(lat.audit.audit_counts(read, T0, T0 + 10, lat.audit.AGENT_USER), 2)
    assert agent["requests"] == 4
