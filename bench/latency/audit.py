"""The API server's audit log: requests per node refresh, and the two latencies on its clock.

The log (written by the policy in ``cluster``) records only the operator's and the agent's
identities. Counting there, not in the operator, also counts what its libraries send (kopf's
finalizer patches, discovery, watches). Its timestamps of the status writes give the latencies
without the time the agent process and the bench's watcher waited for a CPU.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .latencies import first_grant, first_terminal, parse_ts, phase_reports
from .stats import summary
from .watch import Seen

#: The identities (client certificate CNs) the bench gives the operator and the agent.
OPERATOR_USER = "hostrefresh-operator"
AGENT_USER = "hostrefresh-agent"


@dataclass(frozen=True)
class Write:
    """One status PATCH of a HostRefresh as the API server's audit log shows it."""

    received: float  # requestReceivedTimestamp
    done: float  # stageTimestamp of ResponseComplete: the write is stored


def status_writes(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, list[Write]]]:
    """``user -> HostRefresh name -> status patches`` (successful ones, by time received)."""
    out: dict[str, dict[str, list[Write]]] = {OPERATOR_USER: defaultdict(list), AGENT_USER: defaultdict(list)}
    for rec in records:
        ref = rec.get("objectRef") or {}
        user = rec.get("user", {}).get("username")
        if user not in out or rec["verb"] != "patch":
            continue
        if ref.get("resource") != "hostrefreshes" or ref.get("subresource") != "status":
            continue
        if (rec.get("responseStatus") or {}).get("code", 0) >= 300:
            continue
        write = Write(parse_ts(rec["requestReceivedTimestamp"]), parse_ts(rec["stageTimestamp"]))
        out[user][ref["name"]].append(write)
    for by_name in out.values():
        for writes in by_name.values():
            writes.sort(key=lambda w: w.received)
    return out


def _write_behind(writes: list[Write], seen_at: float) -> Write | None:
    """The write whose watch event was received at ``seen_at``: the last one sent before it."""
    return next((w for w in reversed(writes) if w.received <= seen_at), None)


def server_side(events: dict[str, list[Seen]], records: Iterable[dict[str, Any]], budget: int | None) -> dict[str, Any]:
    """The two latencies on the API server's clock (audit log), free of when a watcher got a CPU.

    report -> status: from the agent's report being stored (its PATCH answered) to the operator's
    status that reflects it being stored. slot free -> grant: from the operator's write of a child's
    final phase being stored to the write of the next child's Proceed being stored (FIFO, as
    ``slot_latencies``). Writes are matched to watch events by name and time; a report whose
    writes cannot be matched is left out (counted in ``unmatched``).
    """
    writes = status_writes(records)
    agent_w, op_w = writes[AGENT_USER], writes[OPERATOR_USER]
    reports: list[float] = []
    unmatched = 0
    for r in phase_reports(events):
        if r.already_shown:
            continue
        report = next((w for w in agent_w.get(r.name, []) if w.received >= r.stamped - 0.002), None)
        status = _write_behind(op_w.get(r.name, []), r.reflected) if r.reflected is not None else None
        if report is None or status is None or status.received < report.received:
            unmatched += 1
            continue
        reports.append(status.done - report.done)
    out: dict[str, Any] = {"report_to_status": summary(reports), "unmatched_reports": unmatched}
    if budget is not None:
        frees, grants = [], []
        for name, seq in events.items():
            t_free = first_terminal(seq)
            t_grant = first_grant(seq)
            free = _write_behind(op_w.get(name, []), t_free) if t_free is not None else None
            grant = _write_behind(op_w.get(name, []), t_grant) if t_grant is not None else None
            if free is not None:
                frees.append(free.done)
            if grant is not None:
                grants.append(grant.done)
        frees.sort()
        grants.sort()
        slots = [g - f for f, g in zip(frees, grants[budget:], strict=False)]
        out["slot_free_to_grant"] = summary(slots)
    return out


def audit_records(log: Path) -> Iterator[dict[str, Any]]:
    """Each request in the audit log once (a request has a line per stage, with the same auditID)."""
    seen: set[str] = set()
    if not log.exists():
        return
    with open(log) as f:
        for line in f:
            rec: dict[str, Any] = json.loads(line)
            if rec["auditID"] not in seen:
                seen.add(rec["auditID"])
                yield rec


def audit_counts(
    records: Iterable[dict[str, Any]], since: float, until: float, user: str = OPERATOR_USER
) -> Counter[str]:
    """Requests by the operator's user in [since, until], by verb and resource[/subresource]."""
    counts: Counter[str] = Counter()
    for rec in records:
        if rec.get("user", {}).get("username") != user:
            continue
        if not since <= parse_ts(rec["requestReceivedTimestamp"]) <= until:
            continue
        ref = rec.get("objectRef") or {}
        resource = ref.get("resource") or "(API discovery)"
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        code = (rec.get("responseStatus") or {}).get("code", 0)
        failed = f" → {code}" if code >= 400 and code not in (404,) else ""
        counts[f"{rec['verb']} {resource}{failed}"] += 1
    return counts


def per_refresh(counts: Counter[str], n: int) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "requests": total,
        "refreshes": n,
        "per_refresh": round(total / n, 2) if n else None,
        "by_verb_resource": {k: {"count": v, "per_refresh": round(v / n, 2)} for k, v in counts.most_common()},
    }
