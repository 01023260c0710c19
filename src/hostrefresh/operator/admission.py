"""May a HostRefresh start now? One pure function, one clear reason when the answer is no."""

from __future__ import annotations

from dataclasses import dataclass

from hostrefresh.api import RefreshScope, UnmovableVMPolicy
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.views import RefreshInputs


@dataclass(frozen=True)
class Blocked:
    """Why a refresh waits, for the Progressing condition and an Event."""

    reason: str
    message: str


def admission(inputs: RefreshInputs) -> Blocked | None:
    """None when the refresh may start; otherwise the first reason it may not."""
    spec = inputs.hr.spec
    node_name = spec.node_name
    if inputs.node is None:
        return Blocked(Reason.NODE_NOT_FOUND, f"node {node_name} does not exist; check spec.nodeName")
    active = [p for p in inputs.peers if p.started and not p.terminal]
    if active:
        return Blocked(
            Reason.NODE_BUSY,
            f"HostRefresh {active[0].name} is already refreshing node {node_name}; this one starts after it ends",
        )
    unfinished = [p for p in inputs.peers if p.unfinished]
    if unfinished:
        return Blocked(
            Reason.NODE_BUSY,
            f"HostRefresh {unfinished[0].name} failed with node {node_name} half-way; its agent brings the node to "
            "an end (back, or forward past the point of no return) and this one starts after that. If the agent "
            "never returns, repair the node by hand and delete that HostRefresh (docs/troubleshooting.md)",
        )
    earlier = [p for p in inputs.peers if not p.terminal and (p.created_at, p.name) < (inputs.created_at, inputs.name)]
    if earlier:
        return Blocked(
            Reason.NODE_BUSY,
            f"HostRefresh {earlier[0].name} for node {node_name} was created first and goes first",
        )
    if spec.paused:
        return Blocked(Reason.PAUSED, "spec.paused is true; set it to false to start")
    if inputs.plan_paused:
        return Blocked(Reason.PLAN_PAUSED, "the owning RefreshPlan is paused")
    if not inputs.node.ready:
        return Blocked(Reason.NODE_NOT_READY, f"node {node_name} is not Ready")
    if not inputs.agent.alive(inputs.now):
        return Blocked(
            Reason.AGENT_NOT_ALIVE,
            f"the hostrefresh agent on {node_name} has not renewed its Lease recently; is the DaemonSet running there?",
        )
    if spec.scope == RefreshScope.HOST and inputs.agent.l0 in ("absent", "incompatible"):
        backend = f" with its {inputs.agent.l0_backend} backend" if inputs.agent.l0_backend else ""
        what = "finds no L0 hypervisor" if inputs.agent.l0 == "absent" else "finds an L0 of another ABI version"
        return Blocked(
            Reason.NO_L0,
            f"the hostrefresh agent on {node_name} {what}{backend}: a host refresh needs the L0 under the node's "
            "host. To refresh only QEMU, set spec.scope: VMM (no L0 needed); to refresh the host, install the L0 "
            "on the node (docs/troubleshooting.md, 'No L0')",
        )
    if inputs.vmis is not None and inputs.vmis.unmovable and spec.unmovable_vm_policy == UnmovableVMPolicy.BLOCK:
        names = ", ".join(inputs.vmis.unmovable[:5])
        return Blocked(
            Reason.UNMOVABLE_VMS,
            f"{len(inputs.vmis.unmovable)} VMI(s) on {node_name} cannot be handed over (host devices, GPUs, SR-IOV): "
            f"{names}; stop them or set spec.unmovableVMPolicy: Proceed",
        )
    if inputs.start_at is not None and inputs.start_at > inputs.now:
        return Blocked(
            Reason.START_PACED,
            f"ready; starts at {inputs.start_at:%H:%M:%S.%f}"[:-3] + " UTC: the operator spreads refresh starts "
            "over time (its --max-starts-per-second) so that the API server stays responsive",
        )
    return None
