"""``metav1.Condition`` bookkeeping, as cluster-api and cert-manager do it.

Conditions are set from the first visit, Ready comes first, and ``lastTransitionTime`` changes only
when the status changes (a new reason or message alone does not move it).
"""

from __future__ import annotations

from datetime import datetime

from hostrefresh.api.meta import Condition, ConditionStatus

# Condition types of HostRefresh.
READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
NESTED_ACTIVE = "NestedActive"
PREFLIGHT_PASSED = "PreflightPassed"
# kstatus' abnormal-true pair, read by Flux, kpt and `kubectl wait`-style tools: Reconciling=True is
# InProgress, Stalled=True is Failed, neither (with observedGeneration current) is Current. A refresh
# or rollout that failed, or halted for a human, is Stalled, so GitOps tools stop waiting on it.
RECONCILING = "Reconciling"
STALLED = "Stalled"
HOST_REFRESH_TYPES = (READY, PROGRESSING, DEGRADED, NESTED_ACTIVE, PREFLIGHT_PASSED, RECONCILING, STALLED)

# Condition types of RefreshPlan (Ready, Progressing, Degraded, Reconciling, Stalled shared).
PAUSED = "Paused"
PLAN_TYPES = (READY, PROGRESSING, PAUSED, DEGRADED, RECONCILING, STALLED)

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


class Reason:
    """CamelCase reasons; one constant per distinct situation so tools can match on them."""

    NOT_STARTED = "NotStarted"
    STARTED = "Started"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "RefreshSucceeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_RETRYING = "RollbackRetrying"
    ROLLBACK_TOO_LATE = "RollbackTooLate"
    FAILED = "RefreshFailed"
    STEP_FAILED = "StepFailed"
    HELD = "HeldAfterFailure"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    AGENT_SILENT = "AgentSilent"
    VMS_LOST = "VMsLost"
    ABORTED = "Aborted"
    DELETED = "DeletedMidRefresh"
    AS_EXPECTED = "AsExpected"
    # Admission (a refresh waits with one of these).
    NODE_NOT_FOUND = "NodeNotFound"
    NODE_BUSY = "NodeBusy"
    NODE_NOT_READY = "NodeNotReady"
    AGENT_NOT_ALIVE = "AgentNotAlive"
    PLAN_PAUSED = "PlanPaused"
    UNMOVABLE_VMS = "UnmovableVMs"
    PAUSED = "Paused"
    START_PACED = "StartPaced"
    # NestedActive / PreflightPassed.
    NESTED_ENABLED = "NestedEnabled"
    NESTED_DISABLED = "NestedDisabled"
    PREFLIGHT_PENDING = "PreflightPending"
    PREFLIGHT_OK = "PreflightSucceeded"
    PREFLIGHT_FAILED = "PreflightFailed"
    # RefreshPlan.
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLING_OUT = "RollingOut"
    WAITING_FOR_WINDOW = "OutsideMaintenanceWindow"
    SOAKING = "Soaking"
    HEALTH_GATE = "HealthGateClosed"
    FAILURE_THRESHOLD = "FailureThresholdReached"
    PAUSED_BY_USER = "PausedBySpec"
    NO_NODES = "NoNodesSelected"
    INVALID_SPEC = "InvalidSpec"


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
