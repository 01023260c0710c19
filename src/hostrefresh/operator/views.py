"""Immutable snapshots the pure decision functions read (built by ``kube`` from caches and watches)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hostrefresh.api import HostRefresh

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


#: How far apart the agents' and the operator's clocks may be (NTP keeps them far closer).
MAX_CLOCK_SKEW_SECONDS = 60.0


@dataclass(frozen=True)
class AgentView:
    """The node agent's heartbeat (its Lease).

    ``renewed_at`` is stamped by the agent, on its clock; ``seen_at`` is when the operator saw that
    renewal, on its own. Liveness is judged on the operator's clock (as the node lifecycle controller
    judges kubelets), so an agent whose clock runs ahead or behind neither looks alive too long nor
    silent too soon; the agent's stamp only rules out a renewal long past (an operator that has just
    started sees every Lease at once).
    """

    renewed_at: datetime | None = None
    lease_seconds: int = 30
    seen_at: datetime | None = None
    #: What the agent reports of its node's L0 (``present``, ``absent``, ``incompatible``; None: not
    #: reported, as by an agent older than the report) and which L0 backend it uses.
    l0: str | None = None
    l0_backend: str = ""

    def seen(self, previous: AgentView | None, now: datetime) -> AgentView:
        """This view of the Lease, stamped with when the operator saw its renewal: ``now`` for a renewal
        it had not seen (another ``renewed_at``), the earlier stamp for one it had. A watch relists
        every object now and then; a relist is no renewal, and must not make a dead agent look alive."""
        if previous is not None and previous.renewed_at == self.renewed_at and previous.seen_at is not None:
            return replace(self, seen_at=previous.seen_at)
        return replace(self, seen_at=now)

    @property
    def heard_at(self) -> datetime | None:
        """When the operator last saw a renewal (the agent's stamp when that is unknown), but never
        later than the agent's own stamp allows: a Lease seen only now (an operator just started, a
        relist of its watch) whose renewal the agent stamped long ago is no recent sign of life."""
        if self.seen_at is None or self.renewed_at is None:
            return self.seen_at or self.renewed_at
        return min(self.seen_at, self.renewed_at + timedelta(seconds=MAX_CLOCK_SKEW_SECONDS))

    def alive(self, now: datetime, tolerance_seconds: float | None = None) -> bool:
        """Fresh when a renewal was seen within the lease duration (or an explicit tolerance)."""
        if self.renewed_at is None or self.heard_at is None:
            return False
        limit = self.lease_seconds if tolerance_seconds is None else tolerance_seconds
        if (now - self.renewed_at).total_seconds() > limit + MAX_CLOCK_SKEW_SECONDS:
            return False
        return (now - self.heard_at).total_seconds() <= limit


@dataclass(frozen=True)
class PeerView:
    """Another HostRefresh of the same node, for the one-active-refresh-per-node rule."""

    name: str
    created_at: datetime
    started: bool
    terminal: bool
    unfinished: bool = False  # Failed by the operator with the node half-way: its agent still finishes it
    scope: str = "Host"  # spec.scope: Host or VMM


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
    #: Silence before this is the operator's own (its API link was down): now while it is down, the end
    #: of its last outage after one (see hostrefresh.kube.link).
    link_trusted_since: datetime | None = None
