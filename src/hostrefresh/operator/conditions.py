"""``metav1.Condition`` bookkeeping, as cluster-api and cert-manager do it.

Conditions are set from the first visit, Ready comes first, and ``lastTransitionTime`` changes only
when the status changes (a new reason or message alone does not move it).
"""

from __future__ import annotations

from datetime import datetime

from hostrefresh.api.conditions import (
    DEGRADED,
    HOST_REFRESH_TYPES,
    NESTED_ACTIVE,
    PAUSED,
    PLAN_TYPES,
    PREFLIGHT_PASSED,
    PROGRESSING,
    READY,
    RECONCILING,
    STALLED,
    Reason,
)
from hostrefresh.api.meta import Condition, ConditionStatus

#: The types and reasons are the API's (hostrefresh.api.conditions); the decisions read them as ``cond.*``.
__all__ = [
    "DEGRADED",
    "FALSE",
    "HOST_REFRESH_TYPES",
    "NESTED_ACTIVE",
    "PAUSED",
    "PLAN_TYPES",
    "PREFLIGHT_PASSED",
    "PROGRESSING",
    "READY",
    "RECONCILING",
    "STALLED",
    "TRUE",
    "UNKNOWN",
    "Reason",
    "get",
    "ordered",
    "set_condition",
]

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; the transition time moves only on a status change."""
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            out.append(cond)
            continue
        found = True
        moved = cond.status != status
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=generation,
                last_transition_time=now if moved else cond.last_transition_time,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=generation,
                last_transition_time=now,
            )
        )
    return out


def ordered(conditions: list[Condition], order: tuple[str, ...]) -> list[Condition]:
    """Known types in their documented order (Ready first), then any others."""
    rank = {t: i for i, t in enumerate(order)}
    return sorted(conditions, key=lambda c: rank.get(c.type, len(order)))


def get(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, if set."""
    return next((c for c in conditions if c.type == type_), None)
