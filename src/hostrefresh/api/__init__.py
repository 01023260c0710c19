"""API types of the hostrefresh.io/v1alpha1 custom resources; the CRDs are generated from them."""

from hostrefresh.api.common import (
    FailurePolicy,
    HandoverPolicy,
    MaintenanceWindow,
    PartitionSpec,
    PhaseTimeouts,
    RefreshTemplate,
    TargetHost,
    UnmovableVMPolicy,
)
from hostrefresh.api.hostrefresh import (
    API_VERSION,
    GROUP,
    VERSION,
    AgentStatus,
    Directive,
    HandoverPath,
    HostRefresh,
    HostRefreshSpec,
    HostRefreshStatus,
    StepState,
    VMResult,
    VMResultState,
)
from hostrefresh.api.meta import Condition, ConditionStatus, LabelSelector
from hostrefresh.api.phases import FORWARD_STEPS, Phase, can_roll_back
from hostrefresh.api.refreshplan import HealthGates, RefreshPlan, RefreshPlanSpec, RefreshPlanStatus

__all__ = [
    "API_VERSION",
    "FORWARD_STEPS",
    "GROUP",
    "VERSION",
    "AgentStatus",
    "Condition",
    "ConditionStatus",
    "Directive",
    "FailurePolicy",
    "HandoverPath",
    "HandoverPolicy",
    "HealthGates",
    "HostRefresh",
    "HostRefreshSpec",
    "HostRefreshStatus",
    "LabelSelector",
    "MaintenanceWindow",
    "PartitionSpec",
    "Phase",
    "PhaseTimeouts",
    "RefreshPlan",
    "RefreshPlanSpec",
    "RefreshPlanStatus",
    "RefreshTemplate",
    "StepState",
    "TargetHost",
    "UnmovableVMPolicy",
    "VMResult",
    "VMResultState",
    "can_roll_back",
]
