"""The HostRefresh custom resource: one node's refresh.

Status has two writers, each owning its own fields: the operator owns ``status`` at the top level
(phase, conditions, directive, timestamps); the node agent owns ``status.agent`` only.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from hostrefresh.api.base import ApiModel, rule
from hostrefresh.api.common import RefreshTemplate, TargetHost, scope_problems, scope_rules
from hostrefresh.api.meta import Condition
from hostrefresh.api.names import API_VERSION, ApiVersion
from hostrefresh.api.phases import TERMINAL, Phase

_TERMINAL_CEL = ", ".join(f"'{p}'" for p in Phase if p in TERMINAL)


#: The spec a started refresh works to stays as it started: an edit of what the agent acts on
#: (target, partition, handover) would strand the node half-way between two specs. The rule sits
#: at the root because it reads the status (the directive and phase) next to the spec.
SPEC_FROZEN_WHILE_RUNNING = rule(
    "!has(oldSelf.status) || !has(oldSelf.status.directive) || oldSelf.status.directive == 'Wait'"
    f" || (has(oldSelf.status.phase) && oldSelf.status.phase in [{_TERMINAL_CEL}])"
    " || (self.spec.target == oldSelf.spec.target && self.spec.partition == oldSelf.spec.partition"
    " && self.spec.handover == oldSelf.spec.handover && self.spec.scope == oldSelf.spec.scope)",
    "spec.target, spec.scope, spec.partition and spec.handover cannot change while the refresh runs (status.directive is "
    "Proceed or RollBack): the agent works to the spec it started with. Wait for the end, or set spec.abort to "
    "roll back, then create a new HostRefresh with the new values",
)


class HostRefreshSpec(RefreshTemplate):
    """Desired refresh of one node. Written by users or by a RefreshPlan, never by the operator."""

    node_name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            description="Name of the Node to refresh. Immutable: create a new HostRefresh for another node.",
            json_schema_extra={
                "x-kubernetes-validations": [
                    rule(
                        "self == oldSelf",
                        "spec.nodeName is immutable; create a new HostRefresh for another node",
                    )
                ]
            },
        ),
    ]
    target: Annotated[TargetHost, Field(description="Host software to boot in the new partition.")]
    paused: Annotated[
        bool,
        Field(default=False, description="Pause between steps: the agent finishes the current step and waits."),
    ]
    abort: Annotated[
        bool,
        Field(
            default=False,
            description="Abort: roll back if before the point of no return (Retiring; Verifying for scope VMM); "
            "after it the refresh finishes.",
        ),
    ]

    @model_validator(mode="after")
    def _target_fits_scope(self) -> "HostRefreshSpec":
        problems = scope_problems(self.scope, self.target)
        if problems:
            raise ValueError(problems[0])
        return self


#: CEL rules on the HostRefresh spec (cross-field).
SPEC_RULES = scope_rules("scope")


class Directive(StrEnum):
    """What the operator tells the agent to do; the agent never decides to start on its own."""

    WAIT = "Wait"
    PROCEED = "Proceed"
    ROLL_BACK = "RollBack"


class HandoverPath(StrEnum):
    """How a VM's memory reached the new L1."""

    ZERO_COPY = "ZeroCopy"
    COPY = "Copy"


class VMResultState(StrEnum):
    """Outcome of one VM's handover."""

    PENDING = "Pending"
    HANDED_OVER = "HandedOver"
    FAILED = "Failed"
    HANDED_BACK = "HandedBack"


class VMResult(ApiModel):
    """Per-VM handover record, written by the agent."""

    name: Annotated[str, Field(max_length=253, description="Name of the VM on the node.")]
    result: Annotated[VMResultState, Field(description="Pending, HandedOver, Failed or HandedBack.")]
    path: Annotated[
        HandoverPath | None,
        Field(default=None, description="ZeroCopy (guest RAM handed over) or Copy (live-migrated by copying)."),
    ]
    downtime_millis: Annotated[
        float | None, Field(default=None, ge=0, description="Guest downtime during the switchover, in ms.")
    ]
    total_millis: Annotated[float | None, Field(default=None, ge=0, description="Total handover time, in ms.")]
    bytes_transferred: Annotated[
        int | None, Field(default=None, ge=0, description="Bytes QEMU transferred for this VM.")
    ]
    message: Annotated[str, Field(default="", max_length=4096, description="Error or detail for humans.")]


class StepState(StrEnum):
    """Progress of the agent inside one step."""

    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"


class AgentStatus(ApiModel):
    """Progress reported by the node agent; it is the only writer of these fields."""

    step: Annotated[Phase | None, Field(default=None, description="The step the agent is executing or finished.")]
    step_state: Annotated[StepState | None, Field(default=None, description="Running, Done or Failed (of `step`).")]
    step_started_at: Annotated[datetime | None, Field(default=None, description="When `step` started.")]
    updated_at: Annotated[datetime | None, Field(default=None, description="Time of the agent's last report.")]
    message: Annotated[str, Field(default="", max_length=4096, description="What the agent is doing or why it failed.")]
    failure_reason: Annotated[
        str | None,
        Field(default=None, max_length=128, description="CamelCase reason of the step failure, if any."),
    ]
    nested_since: Annotated[
        datetime | None,
        Field(default=None, description="When nested virtualization was enabled, while it is on."),
    ]
    nested_seconds: Annotated[
        float, Field(default=0.0, ge=0, description="Seconds spent with nested virtualization enabled.")
    ]
    vms: Annotated[
        list[VMResult],
        Field(
            default_factory=list,
            description="Per-VM handover results.",
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        ),
    ]
    agent_id: Annotated[
        str | None,
        Field(default=None, max_length=253, description="Which agent instance (old or new L1) wrote last."),
    ]


class VMIInventory(ApiModel):
    """KubeVirt VirtualMachineInstances on the node, as seen by the operator."""

    total: Annotated[int, Field(default=0, ge=0, description="VMIs running on the node.")]
    unmovable: Annotated[
        list[str],
        Field(default_factory=list, description="VMIs that cannot be handed over (host devices, GPUs, SR-IOV)."),
    ]


class HostRefreshStatus(ApiModel):
    """Observed state. Top-level fields are the operator's; `agent` is the node agent's."""

    observed_generation: Annotated[
        int | None, Field(default=None, ge=0, description="metadata.generation the operator last acted on.")
    ]
    phase: Annotated[Phase | None, Field(default=None, description="Phase for humans; decisions use conditions.")]
    conditions: Annotated[
        list[Condition],
        Field(
            default_factory=list,
            description="Ready, Progressing, Paused, Degraded, NestedActive, PreflightPassed, and kstatus' "
            "Reconciling and Stalled (metav1.Condition shape).",
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        ),
    ]
    directive: Annotated[
        Directive | None,
        Field(default=None, description="Operator's instruction to the agent: Wait, Proceed or RollBack."),
    ]
    started_at: Annotated[datetime | None, Field(default=None, description="When the start was granted.")]
    completed_at: Annotated[datetime | None, Field(default=None, description="When a terminal phase was reached.")]
    phase_timestamps: Annotated[
        dict[str, datetime],
        Field(default_factory=dict, description="When each phase was first observed, by phase name."),
    ]
    paused_seconds: Annotated[
        dict[str, float],
        Field(
            default_factory=dict,
            description="Seconds each phase was held by spec.paused, by phase name: its deadline does not count them.",
        ),
    ]
    nested_seconds: Annotated[
        float | None, Field(default=None, ge=0, description="Seconds spent nested, as reported by the agent.")
    ]
    added_taints: Annotated[
        list[str],
        Field(default_factory=list, description="Node taint keys the operator added and will remove."),
    ]
    added_annotations: Annotated[
        list[str],
        Field(default_factory=list, description="Node annotation keys the operator added and will remove."),
    ]
    vmis: Annotated[
        VMIInventory | None,
        Field(default=None, description="KubeVirt VMIs on the node, when KubeVirt is present."),
    ]
    agent: Annotated[AgentStatus | None, Field(default=None, description="Written by the node agent only.")]


class HostRefresh(ApiModel):
    """One node's refresh (cluster-scoped)."""

    KIND: ClassVar[str] = "HostRefresh"
    PLURAL: ClassVar[str] = "hostrefreshes"
    SINGULAR: ClassVar[str] = "hostrefresh"
    SHORT_NAMES: ClassVar[list[str]] = ["hrf", "hostref"]

    api_version: ApiVersion = API_VERSION
    kind: Literal["HostRefresh"] = "HostRefresh"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: HostRefreshSpec
    status: HostRefreshStatus = Field(default_factory=HostRefreshStatus)
