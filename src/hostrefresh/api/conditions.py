"""The condition types and reasons of HostRefresh and RefreshPlan (``status.conditions``), defined once.

The operator sets them (``hostrefresh.operator.conditions``); the CLI and tools read them.
"""

from __future__ import annotations

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
# True while the refresh is held: by its own spec.paused (PausedBySpec), or, not started yet, by its
# paused RefreshPlan (PausedByPlan). A RefreshPlan's Paused (by spec or by its failure threshold) too.
PAUSED = "Paused"
HOST_REFRESH_TYPES = (
    READY,
    PROGRESSING,
    PAUSED,
    DEGRADED,
    NESTED_ACTIVE,
    PREFLIGHT_PASSED,
    RECONCILING,
    STALLED,
)

# Condition types of RefreshPlan (Ready, Progressing, Paused, Degraded, Reconciling, Stalled shared).
PLAN_TYPES = (READY, PROGRESSING, PAUSED, DEGRADED, RECONCILING, STALLED)


class Reason:
    """CamelCase reasons; one constant per distinct situation so tools can match on them."""

    NOT_STARTED = "NotStarted"
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
    NO_L0 = "NoL0"
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
    # HostRefresh's Paused condition: held by its own spec.paused is PAUSED_BY_USER.
    PAUSED_BY_PLAN = "PausedByPlan"
    NO_NODES = "NoNodesSelected"
    INVALID_SPEC = "InvalidSpec"
    OVERLAPPING_PLAN = "OverlappingPlan"
    # Selected nodes someone cordoned wait for their uncordon (spec.cordonedNodes: Wait).
    NODES_CORDONED = "NodesCordoned"
