"""What a HostRefresh or a RefreshPlan object says, read into plain values (pure: no API calls).

Every verb reads objects through these: the outcome rules (done, failed, halted, in progress), a
refresh's phases with their durations and its nested window, a plan's canary and waves.
"""

from __future__ import annotations

import heapq
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from hostrefresh.api import FAILED_ENDS, Phase, RefreshScope, is_terminal
from hostrefresh.api.conditions import DEGRADED, PAUSED, PROGRESSING, READY, Reason
from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.api.refreshplan import resolve_count

Obj = dict[str, Any]


class Outcome(StrEnum):
    """Where a refresh or a rollout stands, as ``status`` and ``watch`` report it."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    HALTED = "Halted"

    @property
    def done(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.HALTED)


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 as the API server writes it, to an aware datetime."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def condition(obj: Obj, type_: str) -> Obj:
    """The status condition of ``type_`` (an empty dict when unset)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    found: Obj = next((c for c in conditions if c.get("type") == type_), {})
    return found


def _stale(obj: Obj) -> bool:
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    return generation is not None and observed is not None and observed < generation


def refresh_outcome(obj: Obj) -> Outcome:
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase == Phase.SUCCEEDED:
        return Outcome.SUCCEEDED
    if phase in FAILED_ENDS:
        return Outcome.FAILED
    if (obj.get("spec") or {}).get("paused"):
        return Outcome.PAUSED
    if phase in (None, Phase.PENDING):
        return Outcome.PENDING
    return Outcome.PROGRESSING


def plan_outcome(obj: Obj) -> Outcome:
    status = obj.get("status") or {}
    if _stale(obj) or not status:
        return Outcome.PENDING if not status else Outcome.PROGRESSING
    if condition(obj, READY).get("status") == "True":
        return Outcome.SUCCEEDED
    if status.get("paused") and condition(obj, PAUSED).get("reason") == Reason.FAILURE_THRESHOLD:
        return Outcome.HALTED
    progressing = condition(obj, PROGRESSING)
    if progressing.get("status") == "False" and progressing.get("reason") == Reason.FAILED:
        return Outcome.FAILED
    if (obj.get("spec") or {}).get("paused"):
        return Outcome.PAUSED
    return Outcome.PROGRESSING


@dataclass(frozen=True)
class Segment:
    """One phase of a refresh: from ``start`` to ``end`` (the next phase's start, or now)."""

    phase: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


@dataclass(frozen=True)
class Window:
    """The time the node ran nested (the old host as a guest of L0)."""

    start: datetime
    end: datetime
    seconds: float
    ongoing: bool


@dataclass(frozen=True)
class VMRecord:
    name: str
    result: str
    path: str
    downtime_ms: float | None
    total_ms: float | None
    message: str


@dataclass
class RefreshView:
    """One HostRefresh as the CLI shows it."""

    name: str
    node: str
    target: str
    plan: str | None
    phase: str
    outcome: Outcome
    created: datetime | None
    started: datetime | None
    completed: datetime | None
    segments: list[Segment]
    window: Window | None
    nested_seconds: float
    vms: list[VMRecord]
    agent_step: str
    why: str  # the condition that stopped or holds it, for humans
    stopping_condition: Obj = field(default_factory=dict)
    scope: str = RefreshScope.HOST.value  # Host (a new host booted beside the old one) or VMM (QEMU only)

    def to_json(self) -> Obj:
        return {
            "name": self.name,
            "node": self.node,
            "target": self.target,
            "scope": self.scope,
            "plan": self.plan,
            "phase": self.phase,
            "outcome": str(self.outcome),
            "createdAt": _iso(self.created),
            "startedAt": _iso(self.started),
            "completedAt": _iso(self.completed),
            "phases": [
                {"phase": s.phase, "start": _iso(s.start), "end": _iso(s.end), "seconds": round(s.seconds, 3)}
                for s in self.segments
            ],
            "nestedWindow": None
            if self.window is None
            else {
                "start": _iso(self.window.start),
                "end": _iso(self.window.end),
                "seconds": round(self.window.seconds, 3),
                "ongoing": self.window.ongoing,
            },
            "nestedSeconds": self.nested_seconds,
            "vms": [
                {
                    "name": v.name,
                    "result": v.result,
                    "path": v.path,
                    "downtimeMillis": v.downtime_ms,
                    "totalMillis": v.total_ms,
                    "message": v.message,
                }
                for v in self.vms
            ],
            "why": self.why,
            "stoppingCondition": self.stopping_condition or None,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def segments(status: Obj, created: datetime | None, now: datetime) -> list[Segment]:
    """The phases in the order they were first seen, each lasting until the next (terminal ones: zero)."""
    stamps = sorted(
        ((t, p) for p, raw in (status.get("phaseTimestamps") or {}).items() if (t := parse_time(raw)) is not None),
        key=lambda item: item[0],
    )
    started = parse_time(status.get("startedAt"))
    completed = parse_time(status.get("completedAt"))
    out: list[Segment] = []
    first = stamps[0][0] if stamps else started
    if created is not None and first is not None and first > created:
        out.append(Segment(Phase.PENDING, created, first))
    for i, (start, phase) in enumerate(stamps):
        if i + 1 < len(stamps):
            end = stamps[i + 1][0]
        elif is_terminal(phase):
            end = start
        else:
            end = completed or now
        out.append(Segment(phase, start, end))
    return out


def nested_window(status: Obj, now: datetime) -> Window | None:
    """While nested: from ``agent.nestedSince`` until now. Afterwards: the reported seconds, ending when
    the node left the nested state (Verifying began, or the rollback ended)."""
    agent = status.get("agent") or {}
    since = parse_time(agent.get("nestedSince"))
    if since is not None:
        return Window(since, now, (now - since).total_seconds(), True)
    seconds = float(agent.get("nestedSeconds") or status.get("nestedSeconds") or 0.0)
    if seconds <= 0:
        return None
    stamps = status.get("phaseTimestamps") or {}
    end = (
        parse_time(stamps.get(Phase.VERIFYING))
        or parse_time(stamps.get(Phase.ROLLED_BACK))
        or parse_time(status.get("completedAt"))
    )
    if end is None:
        return None
    return Window(end - timedelta(seconds=seconds), end, seconds, False)


def why(obj: Obj) -> tuple[str, Obj]:
    """The sentence that explains where the refresh stands, and the condition it comes from."""
    degraded = condition(obj, DEGRADED)
    if degraded.get("status") == "True":
        return f"{degraded.get('reason')}: {degraded.get('message', '')}", degraded
    progressing = condition(obj, PROGRESSING)
    phase = (obj.get("status") or {}).get("phase")
    if phase in (None, Phase.PENDING) and progressing:
        return f"{progressing.get('reason')}: {progressing.get('message', '')}", progressing
    ready = condition(obj, READY)
    if ready:
        return f"{ready.get('reason')}: {ready.get('message', '')}", ready
    return "", {}


def refresh_view(obj: Obj, now: datetime | None = None) -> RefreshView:
    now = now or datetime.now(UTC)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    agent = status.get("agent") or {}
    created = parse_time(meta.get("creationTimestamp"))
    sentence, stopping = why(obj)
    return RefreshView(
        name=meta.get("name", ""),
        node=spec.get("nodeName", ""),
        target=(spec.get("target") or {}).get("version", ""),
        plan=(meta.get("labels") or {}).get(PLAN_LABEL),
        phase=str(status.get("phase") or Phase.PENDING.value),
        outcome=refresh_outcome(obj),
        created=created,
        started=parse_time(status.get("startedAt")),
        completed=parse_time(status.get("completedAt")),
        segments=segments(status, created, now),
        window=nested_window(status, now),
        nested_seconds=float(agent.get("nestedSeconds") or status.get("nestedSeconds") or 0.0),
        vms=[
            VMRecord(
                name=v.get("name", ""),
                result=v.get("result", ""),
                path=v.get("path") or "",
                downtime_ms=v.get("downtimeMillis"),
                total_ms=v.get("totalMillis"),
                message=v.get("message", ""),
            )
            for v in agent.get("vms") or []
        ],
        agent_step=f"{agent.get('step', '')} {agent.get('stepState', '')}".strip(),
        why=sentence,
        stopping_condition=stopping if refresh_outcome(obj) == Outcome.FAILED else {},
        scope=spec.get("scope") or RefreshScope.HOST.value,
    )


@dataclass
class PlanRow:
    """A plan's child with its place in the rollout."""

    view: RefreshView
    wave: int
    canary: bool


def rollout(plan: Obj, children: list[Obj], now: datetime | None = None) -> list[PlanRow]:
    """The plan's children in start order, with their wave (a start from rest opens a new one) and
    whether they were canaries (the first ``spec.canary`` started)."""
    views = sorted(
        (refresh_view(c, now) for c in children),
        key=lambda v: (v.started or v.created or datetime.max.replace(tzinfo=UTC), v.node),
    )
    canary = int((plan.get("spec") or {}).get("canary", 1))
    rows: list[PlanRow] = []
    wave = 0
    busy_until: datetime | None = None
    moment = now or datetime.now(UTC)
    for i, view in enumerate(views):
        start = view.started
        if start is None:
            rows.append(PlanRow(view, 0, False))
            continue
        if busy_until is None or start >= busy_until:
            wave += 1
        end = view.completed or moment
        busy_until = end if busy_until is None else max(busy_until, end)
        rows.append(PlanRow(view, wave, i < canary))
    return rows


@dataclass(frozen=True)
class PlanView:
    name: str
    target: str
    outcome: Outcome
    nodes: int
    pending: int
    active: int
    succeeded: int
    failed: int
    waves: int
    paused_reason: str
    message: str

    def to_json(self) -> Obj:
        return {
            "name": self.name,
            "target": self.target,
            "outcome": str(self.outcome),
            "nodes": self.nodes,
            "pending": self.pending,
            "active": self.active,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "wavesStarted": self.waves,
            "pausedReason": self.paused_reason or None,
            "message": self.message,
        }


def plan_view(obj: Obj) -> PlanView:
    status = obj.get("status") or {}
    outcome = plan_outcome(obj)
    source = {
        Outcome.HALTED: PAUSED,
        Outcome.FAILED: DEGRADED,
        Outcome.PAUSED: PAUSED,
        Outcome.SUCCEEDED: READY,
    }.get(outcome, PROGRESSING)
    cond = condition(obj, source)
    return PlanView(
        name=(obj.get("metadata") or {}).get("name", ""),
        target=((obj.get("spec") or {}).get("target") or {}).get("version", ""),
        outcome=outcome,
        nodes=int(status.get("nodes", 0)),
        pending=int(status.get("pending", 0)),
        active=int(status.get("active", 0)),
        succeeded=int(status.get("succeeded", 0)),
        failed=int(status.get("failed", 0)),
        waves=int(status.get("wavesStarted", 0)),
        paused_reason=status.get("pausedReason") or "",
        message=f"{cond.get('reason')}: {cond.get('message', '')}" if cond else "",
    )


#: A plan's soakSeconds when its spec does not say (the API's default).
DEFAULT_SOAK_SECONDS = 300


@dataclass(frozen=True)
class Eta:
    """How long a RefreshPlan's rollout still takes, as ``plan_eta`` estimates it (the one definition;
    docs/operations.md, "Following a rollout with kubectl hostrefresh watch", says it in words)."""

    seconds: float | None  # None: unknown (no node completed yet, or the plan is paused or halted)
    per_node_seconds: float | None  # the median per-node time it is built on
    completed: int  # the children that median is taken over
    remaining: int  # nodes still to finish: running and pending
    slots: int  # maxUnavailable, resolved
    why: str = ""  # why unknown

    def text(self) -> str:
        if self.seconds is None:
            return f"ETA unknown ({self.why})" if self.why else "ETA unknown"
        return "ETA 0s" if self.seconds <= 0 else f"ETA {duration(self.seconds)}"

    def to_json(self) -> Obj:
        return {
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "perNodeSeconds": None if self.per_node_seconds is None else round(self.per_node_seconds, 3),
            "completed": self.completed,
            "remaining": self.remaining,
            "slots": self.slots,
            "why": self.why or None,
        }


def node_seconds(children: list[Obj]) -> list[float]:
    """The per-node times a plan has measured: ``completedAt - startedAt`` of each child that Succeeded."""
    out: list[float] = []
    for child in children:
        status = child.get("status") or {}
        start, end = parse_time(status.get("startedAt")), parse_time(status.get("completedAt"))
        if status.get("phase") == Phase.SUCCEEDED and start is not None and end is not None:
            out.append(max((end - start).total_seconds(), 0.0))
    return out


def plan_eta(plan: Obj, children: list[Obj], now: datetime | None = None) -> Eta:
    """The rollout's ETA: when the last node would finish if every node not yet finished took T.

    - T: the median of ``node_seconds`` (unknown until at least one child Succeeded);
    - slots: ``spec.maxUnavailable`` resolved against ``status.nodes`` as the operator does;
    - a running child (started or created, not ended) frees its slot after ``T - elapsed`` (at least 0);
    - the ``status.pending`` nodes take freed slots one by one, each ``spec.soakSeconds`` after the slot's
      previous node ended (a slot free now: soakSeconds after the plan's last child ended, or now), and
      each takes T.

    Zones, maintenance windows, health gates, cordons, retries and failures are not foreseen. A plan
    that succeeded has 0; a paused, halted or failed one, and one with nothing measured, an unknown ETA.
    """
    now = now or datetime.now(UTC)
    spec = plan.get("spec") or {}
    status = plan.get("status") or {}
    nodes = int(status.get("nodes", 0))
    slots = resolve_count(spec.get("maxUnavailable", 1), nodes) or 1
    running = [c for c in children if not refresh_outcome(c).done]
    pending = int(status.get("pending", 0))
    remaining = len(running) + pending
    measured = node_seconds(children)
    per_node = statistics.median(measured) if measured else None

    def eta(seconds: float | None, why: str = "") -> Eta:
        return Eta(seconds, per_node, len(measured), remaining, slots, why)

    outcome = plan_outcome(plan)
    if outcome == Outcome.SUCCEEDED:
        return eta(0.0)
    if outcome.done:
        return eta(None, str(outcome).lower())  # failed or halted: nothing more starts by itself
    if outcome == Outcome.PAUSED or status.get("paused"):
        return eta(None, "paused")
    if per_node is None:
        return eta(None, "no node completed yet")
    if remaining == 0:
        return eta(0.0)
    soak = float(spec.get("soakSeconds", DEFAULT_SOAK_SECONDS))
    ends: list[float] = []  # when each running node frees its slot, seconds from now
    for child in running:
        status_c = child.get("status") or {}
        started = parse_time(status_c.get("startedAt"))
        elapsed = (now - started).total_seconds() if started is not None else 0.0
        ends.append(max(per_node - elapsed, 0.0))
    ended = [t for c in children if (t := parse_time((c.get("status") or {}).get("completedAt"))) is not None]
    free_from = max((max(ended) - now).total_seconds() + soak, 0.0) if ended else 0.0
    heapq.heapify(ends)
    finish = max(ends, default=0.0)
    for _ in range(pending):
        if len(ends) < slots:
            start = free_from
        else:
            start = heapq.heappop(ends) + soak
            while len(ends) >= slots:  # more running than slots (maxUnavailable lowered): wait for more
                start = max(start, heapq.heappop(ends) + soak)
        end = start + per_node
        heapq.heappush(ends, end)
        finish = max(finish, end)
    return eta(finish)


def duration(seconds: float | None) -> str:
    """Short human duration: 850ms, 12.3s, 4m05s, 2h03m."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
