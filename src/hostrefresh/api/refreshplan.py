"""The RefreshPlan custom resource: a fleet rollout that creates HostRefresh objects wave by wave."""

import math
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from hostrefresh.api.base import ApiModel, rule
from hostrefresh.api.common import MaintenanceWindow, RefreshTemplate, TargetHost, scope_problems, scope_rules
from hostrefresh.api.meta import Condition, LabelSelector
from hostrefresh.api.names import API_VERSION, LABEL_VALUE_MAX, PLAN_LABEL, ApiVersion

PERCENT_OR_COUNT_RULE = rule(
    "type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",
    "must be a positive integer or a percentage from 1% to 100%, e.g. 3 or 10%",
)


def resolve_count(value: int | str | None, total: int) -> int | None:
    """A ``maxUnavailable``-style value: integer, or percentage of ``total`` rounded down, at least 1."""
    if value is None:
        return None
    if isinstance(value, int):
        return max(1, value)
    percent = int(value.rstrip("%"))
    return max(1, math.floor(total * percent / 100))


class CordonedNodes(StrEnum):
    """What a plan does with a selected node that someone cordoned (``spec.unschedulable``) before its start.

    An enum, not a bool: a third answer (such as leaving such nodes out of the rollout) can come later
    without a second field.
    """

    #: Start it once it is uncordoned; the plan is not Ready before (a cordon is someone's maintenance).
    WAIT = "Wait"
    #: Refresh it like any other node (the cordon stays as it was).
    INCLUDE = "Include"


class PrometheusGate(ApiModel):
    """A health signal from Prometheus that must be quiet before the plan starts another node.

    Quiet means: the query returns no series. The operator asks the Prometheus its --prometheus-url
    names (chart value operator.prometheusURL); without one, or when Prometheus does not answer, the
    plan starts nothing and says why (a gate that cannot be read is closed, never open).
    """

    query: Annotated[
        str | None,
        Field(
            default=None,
            min_length=1,
            max_length=4096,
            description="PromQL instant query that must return no series, e.g. "
            "'sum(rate(http_requests_errors_total[5m])) > 10'.",
        ),
    ]
    alerts: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]],
        Field(
            default_factory=list,
            max_length=64,
            description="Alert names that must not be firing (Prometheus' ALERTS series with alertstate firing).",
        ),
    ]

    @model_validator(mode="after")
    def _names_something(self) -> "PrometheusGate":
        if self.query is None and not self.alerts:
            raise ValueError(PROMETHEUS_GATE_RULE["message"])
        return self

    def queries(self) -> list[str]:
        """The instant queries that must all return no series: the query, and one per alert."""
        alerts = [f'ALERTS{{alertname="{name}",alertstate="firing"}}' for name in self.alerts]
        return ([self.query] if self.query else []) + alerts


PROMETHEUS_GATE_RULE = rule(
    "has(self.query) || (has(self.alerts) && size(self.alerts) > 0)",
    "spec.healthGates.prometheus names nothing to watch: set query (PromQL that must return no series) or "
    "alerts (alert names that must not be firing), or remove it",
)


class Approval(ApiModel):
    """Where the rollout holds until a person approves (``kubectl hostrefresh approve PLAN``).

    An approval is the plan's annotation hostrefresh.io/approved-wave set to a wave number: it lets
    that wave and every earlier one start. Wave numbers only grow, across targets too, so an old
    approval never opens a new rollout's gate.
    """

    after_canary: Annotated[
        bool,
        Field(
            default=False,
            description="Hold after the canary nodes succeeded and soaked, before the first other node starts.",
        ),
    ]
    every_wave: Annotated[
        bool,
        Field(
            default=False,
            description="Hold before every wave after the first. The rollout then goes in whole waves: up to "
            "maxUnavailable nodes start together and the next wave waits until they all ended and soaked "
            "(no refill of a freed slot mid-wave).",
        ),
    ]


class HealthGates(ApiModel):
    """Conditions that must hold before the plan starts another node."""

    require_node_ready: Annotated[
        bool, Field(default=True, description="Start a node only while its Ready condition is True.")
    ]
    require_agent_alive: Annotated[
        bool, Field(default=True, description="Start a node only while its agent's Lease is fresh.")
    ]
    max_failed: Annotated[
        int,
        Field(
            default=0,
            ge=0,
            description="Start no new node while more than this many refreshes of the plan have failed or rolled "
            "back and are not yet resolved (0: any failure holds new starts).",
        ),
    ]
    prometheus: Annotated[
        PrometheusGate | None,
        Field(
            default=None,
            description="A Prometheus query or alerts that must be quiet before each start (evaluated by the "
            "operator against its --prometheus-url).",
            json_schema_extra={"x-kubernetes-validations": [PROMETHEUS_GATE_RULE]},
        ),
    ]


class RefreshPlanSpec(ApiModel):
    """Desired fleet rollout. The operator never writes it, so GitOps tools see no drift."""

    node_selector: Annotated[
        LabelSelector,
        Field(
            description="Nodes to refresh. An empty selector selects nothing unless spec.allNodes is true.",
        ),
    ]
    all_nodes: Annotated[
        bool,
        Field(
            default=False,
            description="Set to true, with an empty nodeSelector, to refresh every node on purpose.",
        ),
    ]
    cordoned_nodes: Annotated[
        CordonedNodes,
        Field(
            default=CordonedNodes.WAIT,
            description="Wait (default): a selected node that is cordoned (spec.unschedulable, as kubectl cordon "
            "and drain set it) is not started, nor made a canary; it starts once uncordoned, and the plan is not "
            "Ready before. The Progressing condition names such nodes (reason NodesCordoned once only they are "
            "left). Include: refresh cordoned nodes too; the cordon stays. A cordon never stops a refresh under "
            "way, and the operator's own mark on a refreshing node is a taint, not a cordon.",
        ),
    ]
    target: Annotated[TargetHost, Field(description="Host software every selected node is refreshed to.")]
    template: Annotated[
        RefreshTemplate,
        Field(
            default_factory=RefreshTemplate,
            description="How each node refreshes (copied into each HostRefresh).",
        ),
    ]
    max_unavailable: Annotated[
        int | str,
        Field(
            default=1,
            description="Nodes refreshing at once: a positive integer or a percentage (1%-100%) of the selected "
            "nodes, rounded down but at least 1.",
            json_schema_extra={"x-kubernetes-validations": [PERCENT_OR_COUNT_RULE]},
        ),
    ]
    max_unavailable_per_zone: Annotated[
        int | str | None,
        Field(
            default=None,
            description="Optional limit per topology.kubernetes.io/zone: integer or percentage of the zone's "
            "selected nodes, at least 1.",
            json_schema_extra={"x-kubernetes-validations": [PERCENT_OR_COUNT_RULE]},
        ),
    ]
    canary: Annotated[
        int,
        Field(
            default=1,
            ge=0,
            le=1000,
            description="Nodes refreshed alone first; the rest start only after they all succeed and soak.",
        ),
    ]
    soak_seconds: Annotated[
        int,
        Field(
            default=300,
            ge=0,
            le=604800,
            description="Wait after a wave completes before the next wave starts, in seconds (0-604800).",
        ),
    ]
    maintenance_windows: Annotated[
        list[MaintenanceWindow],
        Field(
            default_factory=list,
            max_length=32,
            description="Windows in which new node refreshes may start; none means any time.",
        ),
    ]
    health_gates: Annotated[
        HealthGates, Field(default_factory=HealthGates, description="Gates checked before each start.")
    ]
    failure_threshold: Annotated[
        int,
        Field(
            default=1,
            ge=1,
            description="The plan pauses itself once this many of its refreshes failed or rolled back.",
        ),
    ]
    approval: Annotated[
        Approval,
        Field(
            default_factory=Approval,
            description="Manual gates: hold after the canary, or before every wave, until approved.",
        ),
    ]
    paused: Annotated[bool, Field(default=False, description="Pause: start no new node; running ones finish.")]

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with ``labels`` is in this plan (an empty selector selects nothing: allNodes does)."""
        return self.all_nodes or (not self.node_selector.is_empty() and self.node_selector.matches(labels))

    @model_validator(mode="after")
    def _target_fits_scope(self) -> "RefreshPlanSpec":
        problems = scope_problems(self.template.scope, self.target, "template.scope")
        if problems:
            raise ValueError(problems[0])
        return self


class RefreshPlanStatus(ApiModel):
    """Observed rollout state, written by the operator only."""

    observed_generation: Annotated[int | None, Field(default=None, ge=0, description="Generation last acted on.")]
    conditions: Annotated[
        list[Condition],
        Field(
            default_factory=list,
            description="Ready, Progressing, Paused, Degraded, and kstatus' Reconciling and Stalled "
            "(metav1.Condition shape).",
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        ),
    ]
    target_version: Annotated[str | None, Field(default=None, description="Target version being rolled out.")]
    nodes: Annotated[int, Field(default=0, ge=0, description="Nodes selected by the plan.")]
    pending: Annotated[int, Field(default=0, ge=0, description="Selected nodes not yet started.")]
    active: Annotated[int, Field(default=0, ge=0, description="Node refreshes in progress.")]
    succeeded: Annotated[int, Field(default=0, ge=0, description="Nodes refreshed to the target.")]
    failed: Annotated[int, Field(default=0, ge=0, description="Node refreshes that failed or rolled back.")]
    waves_started: Annotated[
        int,
        Field(
            default=0,
            ge=0,
            description="Waves started so far: starts from rest (the canary is wave 1; refills of freed slots "
            "belong to the running wave).",
        ),
    ]
    wave_starts: Annotated[
        int,
        Field(default=0, ge=0, description="Nodes started in the current wave (whole waves: spec.approval.everyWave)."),
    ]
    awaiting_approval: Annotated[
        int | None,
        Field(
            default=None,
            ge=1,
            description="The wave that waits for approval (kubectl hostrefresh approve PLAN); unset otherwise.",
        ),
    ]
    last_wave_completed_at: Annotated[
        datetime | None,
        Field(default=None, description="When the last wave completed; soak counts from here."),
    ]
    paused: Annotated[bool, Field(default=False, description="Whether the plan is paused (by spec or by failures).")]
    paused_reason: Annotated[str | None, Field(default=None, description="Why the plan is paused.")]


class RefreshPlan(ApiModel):
    """A fleet rollout (cluster-scoped)."""

    KIND: ClassVar[str] = "RefreshPlan"
    PLURAL: ClassVar[str] = "refreshplans"
    SINGULAR: ClassVar[str] = "refreshplan"
    SHORT_NAMES: ClassVar[list[str]] = ["rplan"]

    api_version: ApiVersion = API_VERSION
    kind: Literal["RefreshPlan"] = "RefreshPlan"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RefreshPlanSpec
    status: RefreshPlanStatus = Field(default_factory=RefreshPlanStatus)


#: CEL rules on the whole RefreshPlan object (its name).
PLAN_ROOT_RULES = [
    rule(
        f"size(self.metadata.name) <= {LABEL_VALUE_MAX}",
        f"metadata.name must be at most {LABEL_VALUE_MAX} characters: it is the value of the label "
        f"{PLAN_LABEL} on every HostRefresh the plan creates; choose a shorter name",
    ),
]

#: CEL rules on the whole RefreshPlan spec (cross-field).
PLAN_SPEC_RULES = [
    rule(
        "self.allNodes == true || (has(self.nodeSelector.matchLabels) && size(self.nodeSelector.matchLabels) > 0)"
        " || (has(self.nodeSelector.matchExpressions) && size(self.nodeSelector.matchExpressions) > 0)",
        "spec.nodeSelector is empty and would select every node: add matchLabels/matchExpressions, or set "
        "spec.allNodes: true to refresh every node on purpose",
        ".nodeSelector",
    ),
    rule(
        "!(self.allNodes == true && ((has(self.nodeSelector.matchLabels) && size(self.nodeSelector.matchLabels) > 0)"
        " || (has(self.nodeSelector.matchExpressions) && size(self.nodeSelector.matchExpressions) > 0)))",
        "spec.allNodes: true conflicts with a non-empty spec.nodeSelector: use one or the other",
        ".allNodes",
    ),
    *scope_rules("template.scope"),
]
