"""The two latencies from the watch's receipt timestamps (pure functions of the recorded events).

- report -> status: from an agent's report (its ``updatedAt`` stamp) to the first event whose
  operator-written ``status.phase`` reflects it;
- slot free -> grant: in a RefreshPlan, from a child's terminal phase to the next child's
  ``directive: Proceed``, paired first in, first out.

What a report implies and which phases end a refresh are the product's own definitions
(``lifecycle.agent_phase``, ``api.phases.TERMINAL``), so the bench measures what the operator does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hostrefresh.api import AgentStatus, Directive, StepState
from hostrefresh.api.phases import FORWARD_STEPS, TERMINAL, Phase
from hostrefresh.operator.lifecycle import agent_phase

from .stats import summary
from .watch import Seen

#: A host refresh's phases in the order it passes them, to tell whether a status is at or past the
#: phase a report implies (the product ranks only the forward steps, privately: ``lifecycle._rank``).
ORDER = [str(p) for p in (Phase.PENDING, *FORWARD_STEPS, Phase.SUCCEEDED)]


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def implied_phase(step: str | None, state: str | None) -> str | None:
    """The operator phase an agent report implies: the operator's own reading (``lifecycle.agent_phase``)."""
    phase, _failed = agent_phase(AgentStatus.model_validate({"step": step, "stepState": state}))
    return phase


def rank(phase: str | None) -> int:
    return ORDER.index(phase) if phase in ORDER else -1


@dataclass(frozen=True)
class PhaseReport:
    """An agent report that implies an operator phase, as the watch showed it."""

    name: str
    stamped: float  # the agent's updatedAt
    seen: float  # receipt of the first event that carried it
    already_shown: bool  # that event's phase reflects it already: nothing for the operator to do
    reflected: float | None  # receipt of the first event whose phase reflects it


def phase_reports(events: dict[str, list[Seen]]) -> Iterator[PhaseReport]:
    """Every distinct agent report (``updatedAt``) that implies a phase; failures are not counted.

    A report is reflected by the first event whose operator phase is the implied one or a later one
    (a fast agent can make the operator skip a phase; the status then reflects something newer).
    """
    for name, seq in events.items():
        done: set[str] = set()
        for i, ev in enumerate(seq):
            u = ev.agent_updated
            if u is None or u in done:
                continue
            done.add(u)
            if ev.agent_state == StepState.FAILED:
                continue
            want = implied_phase(ev.agent_step, ev.agent_state)
            if want is None or rank(want) < 0:
                continue
            reflected = next((e.t for e in seq[i:] if rank(e.phase) >= rank(want)), None)
            yield PhaseReport(name, parse_ts(u), ev.t, rank(ev.phase) >= rank(want), reflected)


def report_latencies(events: dict[str, list[Seen]], since: float = 0.0) -> dict[str, list[float]]:
    """Per agent report that implies a phase change: report -> seen, seen -> reflected, report -> reflected.

    Only reports stamped at or after ``since`` count.
    """
    out: dict[str, list[float]] = {"total": [], "agent_write": [], "operator": [], "noop_reports": []}
    for r in phase_reports(events):
        if r.already_shown:
            out["noop_reports"].append(0.0)
            continue
        if r.reflected is None or r.stamped < since:
            continue
        out["total"].append(r.reflected - r.stamped)
        out["agent_write"].append(r.seen - r.stamped)
        out["operator"].append(r.reflected - r.seen)
    return out


def first_grant(seq: list[Seen]) -> float | None:
    """Receipt of a refresh's first ``directive: Proceed`` (its start granted)."""
    return next((e.t for e in seq if e.directive == Directive.PROCEED), None)


def first_terminal(seq: list[Seen]) -> float | None:
    """Receipt of a refresh's first terminal phase (its plan slot freed)."""
    return next((e.t for e in seq if e.phase in TERMINAL), None)


def wave_granted_at(events: dict[str, list[Seen]], wave: int) -> float:
    """Receipt of the ``wave``-th first grant: from then on the first wave is under way in full."""
    grants = sorted(t for seq in events.values() if (t := first_grant(seq)))
    return grants[min(wave, len(grants)) - 1] if grants else 0.0


def report_figures(events: dict[str, list[Seen]], wave: int) -> dict[str, Any]:
    """report -> status over the whole run, its parts, and from the moment the first wave was granted."""
    lat = report_latencies(events)
    ramped = wave_granted_at(events, wave)
    return {
        "report_to_status": summary(lat["total"]),
        "report_to_status_parts": {
            "agent_report_to_watch_receipt": summary(lat["agent_write"]),
            "watch_receipt_to_operator_status": summary(lat["operator"]),
        },
        "report_to_status_after_first_wave_granted": summary(report_latencies(events, ramped)["total"]),
        "reports_already_reflected": len(lat["noop_reports"]),
    }


def slot_latencies(events: dict[str, list[Seen]], budget: int) -> dict[str, list[float]]:
    """FIFO: the i-th slot freed (terminal receipt) is taken by the (budget+i)-th grant (Proceed receipt)."""
    frees, grants, created = [], [], {}
    for name, seq in events.items():
        created[name] = seq[0].t if seq else None
        t_free = first_terminal(seq)
        t_grant = first_grant(seq)
        if t_free is not None:
            frees.append(t_free)
        if t_grant is not None:
            grants.append((t_grant, created[name] or t_grant))
    frees.sort()
    grants.sort()
    later = grants[budget:]
    out: dict[str, list[float]] = {"total": [], "free_to_created": [], "created_to_grant": []}
    for t_free, (t_grant, t_created) in zip(frees, later, strict=False):
        out["total"].append(t_grant - t_free)
        out["free_to_created"].append(t_created - t_free)
        out["created_to_grant"].append(t_grant - t_created)
    return out
