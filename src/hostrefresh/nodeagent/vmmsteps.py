"""The steps of a VMM-only refresh (scope VMM) and its rollback, each idempotent and resumable.

Preflight, Migrating, Verifying: the node's one host stays, the L0 is never called (nothing is
partitioned, nothing nested), and each VM is handed from its QEMU to a QEMU of the target build on
the same host. The point of no return is Verifying, which makes the new build each VM's own; until
then a rollback hands every moved VM back to a QEMU of the build it ran before.
"""

from __future__ import annotations

from hostrefresh.api import HostRefreshSpec, Phase
from hostrefresh.api.phases import VMS_LOST
from hostrefresh.nodeagent.migrate import HandoverRecord, Outcome, VmLocation
from hostrefresh.nodeagent.progress import VmmObservation
from hostrefresh.nodeagent.runtime import NodeRuntime, PreflightError
from hostrefresh.nodeagent.steps import StepFailedError, StepOutcome, apply_policy
from hostrefresh.nodeagent.timing import timed

#: How many refusals a failed preflight names (a node of 200 VMs of one machine type would repeat one).
REFUSALS_SHOWN = 5


async def target_binary(rt: NodeRuntime, spec: HostRefreshSpec) -> str:
    try:
        return await rt.vmm_binary(spec.target)
    except PreflightError as exc:
        raise StepFailedError("ImageInvalid", str(exc)) from exc


def _lost(lost: list[str], state: str, records: list[HandoverRecord] | None = None) -> StepFailedError:
    return StepFailedError(
        VMS_LOST, f"VMs running nowhere: {', '.join(sorted(lost))} (their last QEMU died); {state}", records
    )


async def preflight(rt: NodeRuntime, spec: HostRefreshSpec, obs: VmmObservation) -> StepOutcome:
    binary = await target_binary(rt, spec)
    lost = obs.vms_on(VmLocation.LOST)
    if lost:
        raise StepFailedError(VMS_LOST, f"VMs not running anywhere before the refresh: {', '.join(lost)}")
    try:
        problems = await rt.migrator.vmm().refusals(binary)
    except (OSError, ValueError) as exc:
        raise StepFailedError("VMMIncompatible", f"spec.target.qemu.binary {binary}: {exc}") from exc
    if problems:
        more = f" (and {len(problems) - REFUSALS_SHOWN} more)" if len(problems) > REFUSALS_SHOWN else ""
        raise StepFailedError(
            "VMMIncompatible",
            f"spec.target.qemu cannot receive every VM, nothing was moved: {'; '.join(problems[:REFUSALS_SHOWN])}"
            f"{more}",
        )
    return StepOutcome(f"preflight passed: {len(obs.vms)} VM(s) can move to {binary}")


async def migrating(rt: NodeRuntime, spec: HostRefreshSpec, obs: VmmObservation) -> StepOutcome:
    binary = await target_binary(rt, spec)
    apply_policy(rt, spec)
    with timed("vmm-swap"):
        records = await rt.migrator.vmm().swap(binary)
    failed = [r for r in records if r.outcome in (Outcome.FAILED, Outcome.LOST)]
    if failed:
        detail = "; ".join(f"{r.name}: {r.error}" for r in failed[:REFUSALS_SHOWN])
        raise StepFailedError("HandoverFailed", f"{len(failed)} VM(s) not handed to the new QEMU ({detail})", records)
    paths = sorted({str(r.path) for r in records if r.outcome == Outcome.MOVED})
    return StepOutcome(
        f"{len(records)} VM(s) on QEMU {spec.target.version} (paths: {', '.join(paths) or 'none'})", handovers=records
    )


async def verifying(rt: NodeRuntime, spec: HostRefreshSpec, obs: VmmObservation) -> StepOutcome:
    # Look again right before the commit: a VM that started on the old QEMU since the pass began is
    # handed over first (this step is retried, and the next pass is Migrating for it).
    view = await rt.migrator.vmm().view()
    now = VmmObservation(view.vms, view.binaries, view.pending, obs.target, view.settled)
    adrift = [n for n in now.vms if not now.on_target(n) and now.vms[n] != VmLocation.LOST]
    if adrift:
        raise StepFailedError("VMsNotOnTarget", f"VMs not on the new QEMU yet: {', '.join(sorted(adrift)[:5])}")
    obs = now
    await rt.migrator.vmm().commit()
    lost = obs.vms_on(VmLocation.LOST)
    if lost:
        raise _lost(lost, f"every other VM runs on QEMU {spec.target.version}")
    return StepOutcome(f"every VM ({len(obs.vms)}) runs on QEMU {spec.target.version}; nested never enabled")


STEPS = {Phase.PREFLIGHT: preflight, Phase.MIGRATING: migrating, Phase.VERIFYING: verifying}


async def roll_back(rt: NodeRuntime, obs: VmmObservation) -> StepOutcome:
    """Every moved VM back on a QEMU of the build it ran before; safe to repeat."""
    records = await rt.migrator.vmm().restore()
    stuck = [r for r in records if r.outcome == Outcome.FAILED]
    if stuck:
        raise StepFailedError("HandBackFailed", "; ".join(f"{r.name}: {r.error}" for r in stuck[:5]), records)
    lost = sorted({r.name for r in records if r.outcome == Outcome.LOST} | set(obs.vms_on(VmLocation.LOST)))
    if lost:
        raise _lost(lost, "every other VM is back on the QEMU it ran before", records)
    return StepOutcome("rolled back: every VM on the QEMU it ran before", handovers=records)
