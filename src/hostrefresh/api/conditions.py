"""The condition types and reasons of HostRefresh and RefreshPlan (``status.conditions``), defined once.

The operator sets them (``hostrefresh.operator.conditions``); the CLI and tools read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from hostrefresh.api import phases

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

#: What each condition type says, for the API reference (docs/api.md is generated from it and from
#: the CRDs): one entry per type of either kind, or the generator refuses to write the page.
TYPE_DESCRIPTIONS: Final[Mapping[str, str]] = {
    READY: "HostRefresh: True (RefreshSucceeded) once the node runs the target; otherwise False, its message "
    "saying why the refresh waits, failed or rolled back. RefreshPlan: True (RolloutComplete) once every "
    "selected node runs the target; otherwise False (RollingOut) with how many do.",
    PROGRESSING: "True while a refresh runs (InProgress, RollingBack) or a plan has refreshes running "
    "(RollingOut). False while a refresh waits to start (the reason says what holds it) or a plan starts "
    "nothing (the reason says why), and once either has ended (a refresh: its final phase; a plan: "
    "RolloutComplete or RefreshFailed).",
    PAUSED: "True while held: a refresh by its spec.paused (PausedBySpec) or, not started yet, by its paused "
    "RefreshPlan (PausedByPlan); a plan by its spec.paused (PausedBySpec) or its failure threshold "
    "(FailureThresholdReached). False (AsExpected) otherwise.",
    DEGRADED: "True with the reason something went wrong (a refresh: StepFailed, DeadlineExceeded, AgentSilent, "
    "HeldAfterFailure, ...; a plan: RefreshFailed or OverlappingPlan); False (AsExpected) otherwise. A "
    "succeeded refresh is set back to False.",
    NESTED_ACTIVE: "HostRefresh only. True (NestedEnabled) while the agent reports nested virtualization on, "
    "with the time it was enabled; False (NestedDisabled) with the seconds spent nested in total.",
    PREFLIGHT_PASSED: "HostRefresh only. Unknown (PreflightPending) before the agent's Preflight ran, True "
    "(PreflightSucceeded) once it passed, False (PreflightFailed) with the agent's message when it failed.",
    RECONCILING: "kstatus: True while a refresh or a rollout waits or runs (the reason and message are "
    "Progressing's); False once it has ended, is held for a human, or (a plan) is complete or stalled.",
    STALLED: "kstatus: True once a refresh failed, rolled back or is held after a failure, and once a plan is "
    "halted by its failure threshold, selects no node, has an invalid spec, overlaps an older plan, or "
    "has nothing left to start after failures. GitOps tools read it as failed.",
}


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
    VMS_LOST = phases.VMS_LOST  # the agent's failure reason, as the condition's
    ABORTED = "Aborted"
    DELETED = "DeletedMidRefresh"
    AS_EXPECTED = "AsExpected"
    # Admission (a refresh waits with one of these).
    NODE_NOT_FOUND = "NodeNotFound"
    NODE_BUSY = "NodeBusy"
    NODE_NOT_READY = "NodeNotReady"
    AGENT_NOT_ALIVE = "AgentNotAlive"
    NO_L0 = phases.NO_L0  # the admission's waiting reason and the agent's Preflight failure
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
    # spec.approval: a wave waits for kubectl hostrefresh approve.
    AWAITING_APPROVAL = "AwaitingApproval"
    FAILURE_THRESHOLD = "FailureThresholdReached"
    PAUSED_BY_USER = "PausedBySpec"
    # HostRefresh's Paused condition: held by its own spec.paused is PAUSED_BY_USER.
    PAUSED_BY_PLAN = "PausedByPlan"
    NO_NODES = "NoNodesSelected"
    INVALID_SPEC = "InvalidSpec"
    OVERLAPPING_PLAN = "OverlappingPlan"
    # Selected nodes someone cordoned wait for their uncordon (spec.cordonedNodes: Wait).
    NODES_CORDONED = "NodesCordoned"
