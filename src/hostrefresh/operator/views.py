"""Immutable snapshots the pure decision functions read (built by ``kube`` from caches and watches)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hostrefresh.api import HostRefresh, Phase

ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class Taint:
    """A node taint (key, value, effect), as in core/v1."""

    key: str
    effect: str
    value: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class NodeView:
    """What the operator knows about one Node."""

    name: str
    ready: bool = True
    unschedulable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    resource_version: str = ""  # of the Node this view was made from: writes based on it are guarded

    @property
    def zone(self) -> str:
        return self.labels.get(ZONE_LABEL, "")


@dataclass(frozen=True)
class AgentView:
    """The node agent's heartbeat (its Lease)."""

    renewed_at: datetime | None = None
    lease_seconds: int = 30

    def alive(self, now: datetime, tolerance_seconds: float | None = None) -> bool:
        """Fresh when renewed within the lease duration (or an explicit tolerance)."""
        if self.renewed_at is None:
            return False
        limit = self.lease_seconds if tolerance_seconds is None else tolerance_seconds
        return (now - self.renewed_at).total_seconds() <= limit

    def silent_for(self, now: datetime) -> float | None:
        return None if self.renewed_at is None else (now - self.renewed_at).total_seconds()


@dataclass(frozen=True)
class PeerView:
    """Another HostRefresh of the same node, for the one-active-refresh-per-node rule."""

    name: str
    created_at: datetime
    started: bool
    terminal: bool


@dataclass(frozen=True)
class VMIView:
    """KubeVirt VirtualMachineInstances on the node (None in inputs when KubeVirt is absent)."""

    total: int
    unmovable: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefreshInputs:
    """Everything one HostRefresh decision depends on."""

    hr: HostRefresh
    name: str
    generation: int
    created_at: datetime
    deleting: bool
    node: NodeView | None
    agent: AgentView
    peers: tuple[PeerView, ...]
    plan_paused: bool | None
    vmis: VMIView | None
    now: datetime
    start_at: datetime | None = None  # the start slot reserved by the operator's start pacing


def is_terminal(phase: Phase | str | None) -> bool:
    return phase in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED)
