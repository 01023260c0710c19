"""Operator settings (flags and environment); the reconcilers read them from ``OperatorState.config``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hostrefresh.kube.names import DEFAULT_NAMESPACE, OPERATOR
from hostrefresh.operator.nodemarks import DEFAULT_MARKER_ANNOTATIONS


@dataclass(frozen=True)
class OperatorConfig:
    """How this operator instance runs."""

    kubeconfig: Path | None = None
    namespace: str = DEFAULT_NAMESPACE
    identity: str = OPERATOR
    leader_elect: bool = True
    lease_seconds: float = 15.0
    plan_interval: float = 1.0
    refresh_interval: float = 2.0  # re-check of refreshes waiting to start (node, Lease, plan changes)
    follow_interval: float = 5.0  # re-check of refreshes under way (deadlines, the agent's signs of life)
    max_starts_per_second: float = 10.0  # start pacing (see pacing.py); 0: none
    start_backlog: int = 10  # grants wait while the backlog exceeds this (see OperatorState.backlog)
    # Per-object kopf workers; None: unbounded. A bound deadlocks start-up once a watched kind has more
    # objects than the bound (kopf's workers index, then wait for every object of the kind to be indexed).
    workers: int | None = None
    #: Passes of each kind (HostRefresh, RefreshPlan) run at once by the work queues' workers. Passes
    #: mostly wait on the API server, so many at once cost little; a key never runs twice at once.
    reconcilers: int = 256
    metrics_port: int = 0  # 0: no metrics server
    health_port: int = 0  # 0: no liveness endpoint
    marker_annotations: tuple[str, ...] = field(default=DEFAULT_MARKER_ANNOTATIONS)
    #: Prometheus whose instant-query API answers the plans' health gates; None: no such gate opens.
    prometheus_url: str | None = None
    events_namespace: str = "default"  # where Events about HostRefreshes and RefreshPlans go
