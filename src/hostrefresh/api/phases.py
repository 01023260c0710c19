"""The phases of one node refresh (docs/architecture.md) and which side of the point of no return they are on."""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from hostrefresh.api.common import RefreshScope


class Phase(StrEnum):
    """Phase of a HostRefresh; informational for humans, decisions read conditions and observed state."""

    PENDING = "Pending"
    PREFLIGHT = "Preflight"
    PARTITIONING = "Partitioning"
    NESTED_ENABLING = "NestedEnabling"
    BOOTING_TARGET = "BootingTarget"
    MIGRATING = "Migrating"
    RETIRING = "Retiring"
    DEVIRTUALIZING = "Devirtualizing"
    VERIFYING = "Verifying"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


#: The node-local steps the agent executes, in order.
FORWARD_STEPS: tuple[Phase, ...] = (
    Phase.PREFLIGHT,
    Phase.PARTITIONING,
    Phase.NESTED_ENABLING,
    Phase.BOOTING_TARGET,
    Phase.MIGRATING,
    Phase.RETIRING,
    Phase.DEVIRTUALIZING,
    Phase.VERIFYING,
)

#: The steps of a VMM-only refresh (scope VMM): no partition, no nesting, no second host. Its point
#: of no return is Verifying, which makes the new QEMU each VM's own.
VMM_STEPS: tuple[Phase, ...] = (Phase.PREFLIGHT, Phase.MIGRATING, Phase.VERIFYING)


def forward_steps(scope: str) -> tuple[Phase, ...]:
    """The steps a refresh of ``scope`` (Host or VMM) runs, in order."""
    return VMM_STEPS if scope == RefreshScope.VMM else FORWARD_STEPS


#: Phases from Retiring (the point of no return) on, after which the old L1 is gone: failures roll
#: forward or end Failed, never roll back.
PAST_NO_RETURN: frozenset[Phase] = frozenset(
    {Phase.RETIRING, Phase.DEVIRTUALIZING, Phase.VERIFYING, Phase.SUCCEEDED, Phase.FAILED}
)
#: Phases nothing follows: the refresh is over.
TERMINAL: frozenset[Phase] = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED})
#: The terminal phases short of the target: the node does not run it, and the refresh may be retried.
FAILED_ENDS: frozenset[Phase] = frozenset({Phase.ROLLED_BACK, Phase.FAILED})


def is_terminal(phase: Phase | str | None) -> bool:
    """Whether a refresh in ``phase`` (as read from a status: a string, or None when unset) is over."""
    return phase in TERMINAL


def can_roll_back(phase: Phase) -> bool:
    """True while the old L1 still exists, i.e. before Retiring has started."""
    return phase not in PAST_NO_RETURN and phase not in TERMINAL


#: Agent failure reason of a Retiring step whose retire call the L0 refused: the old host still runs,
#: so rollback is still possible (the point of no return is a *successful* retire).
RETIRE_REFUSED = "RetireRefused"
#: The agent's failure reason for VMs that run nowhere (their last host died with them): no retry
#: brings them back, so the refresh ends Failed, naming them, instead of Succeeded or RolledBack.
VMS_LOST = "VMsLost"
#: The agent's answer to a rollback asked for after the point of no return (the old host retired, or
#: the new QEMU became every VM's own): the operator then lets the refresh finish forward.
ROLLBACK_IMPOSSIBLE = "RollbackImpossible"
#: The agent's failure reason at Preflight of a host refresh on a node with no L0 (it needs one).
NO_L0 = "NoL0"


def left_unfinished(status: Mapping[str, Any]) -> bool:
    """A refresh the operator declared Failed (its agent silent too long, a rollback deadline) while
    the node was half-way: its agent still brings the node to an end (back, or forward past the point
    of no return), whatever the verdict, and no other refresh of the node starts before it has.

    ``status`` as stored (strings). Not when the agent's own last report is an end: the rollback done,
    Verifying done, or VMs lost (reported once everything else was finished).
    """
    if status.get("phase") != Phase.FAILED:
        return False
    report = status.get("agent") or {}
    step, state = report.get("step"), report.get("stepState")
    if report.get("failureReason") == VMS_LOST or (state == "Done" and step in (Phase.VERIFYING, Phase.ROLLING_BACK)):
        return False
    if status.get("directive") == "RollBack":
        return True  # the ordered rollback did not finish (or, came too late: forward then)
    return step in (Phase.DEVIRTUALIZING, Phase.VERIFYING) or (step == Phase.RETIRING and state == "Done")
