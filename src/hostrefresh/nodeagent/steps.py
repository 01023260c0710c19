"""The node-local refresh steps and the rollback, each idempotent and resumable.

Each step starts from an ``Observation`` and changes only what is not yet done, so running it twice,
or after a crash in the middle, converges on the same state. A step raises ``StepFailed`` with a
CamelCase reason when it cannot finish; the operator then decides between rollback and hold.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from hostrefresh.api import HostRefreshSpec, Phase
from hostrefresh.api.phases import NO_L0, RETIRE_REFUSED, VMS_LOST
from hostrefresh.api.quantity import parse_quantity
from hostrefresh.l0 import AlreadyError, Image, L0Error
from hostrefresh.nodeagent.migrate import HandoverError, HandoverRecord, Outcome, VmLocation
from hostrefresh.nodeagent.partition import (
    HOST_RESERVE_BYTES,
    PartitionError,
    blocks_needed,
    check_feasible,
    check_headroom,
)
from hostrefresh.nodeagent.progress import Observation, rollback_done
from hostrefresh.nodeagent.runtime import NodeRuntime, PreflightError
from hostrefresh.nodeagent.timing import timed


class StepFailedError(RuntimeError):
    """A step could not finish; ``reason`` is CamelCase for the status."""

    def __init__(self, reason: str, message: str, handovers: list[HandoverRecord] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.handovers = handovers or []


@dataclass
class StepOutcome:
    """What a step reports besides Done."""

    message: str = ""
    nested_on: bool | None = None  # True: nested was enabled now; False: disabled now
    handovers: list[HandoverRecord] = field(default_factory=list)
    switchover: bool = False  # the old L1 retired: this agent instance ends, the new L1's resumes


async def _l0(call: str, fn: object, *args: object) -> None:
    """Run a blocking L0 call off the event loop; ``AlreadyError`` means done (resumed step)."""
    assert callable(fn)
    try:
        with timed("l0", call=call):
            await asyncio.to_thread(fn, *args)
    except AlreadyError:
        return
    except L0Error as exc:
        raise StepFailedError("L0CallFailed", f"L0 {call} failed: {exc}") from exc


def _memory_bytes(spec: HostRefreshSpec) -> int:
    """spec.partition.memory in bytes; a quantity the agent cannot take fails the step, never retries."""
    try:
        return parse_quantity(spec.partition.memory)
    except ValueError as exc:
        raise StepFailedError("InvalidMemory", f"spec.partition.memory: {exc}") from exc


def apply_policy(rt: NodeRuntime, spec: HostRefreshSpec) -> None:
    """The refresh's handover policy (zero-copy, copy fallback, downtime budget, parallelism) for the migrator."""
    handover = spec.handover
    rt.migrator.policy = replace(
        rt.migrator.policy,
        zero_copy=handover.zero_copy,
        copy_fallback=handover.copy_fallback,
        downtime_limit_ms=handover.downtime_budget_millis,
        parallel=handover.max_parallel,
    )


async def preflight(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    probe = await asyncio.to_thread(rt.l0.probe)
    if not probe.present:
        raise StepFailedError(NO_L0, f"no L0 hypervisor on {rt.node} (backend {probe.backend})")
    if not probe.compatible:
        raise StepFailedError("L0Incompatible", f"L0 ABI {probe.abi_version:#x} is not compatible with this agent")
    try:
        await rt.image(spec.target)
    except PreflightError as exc:
        raise StepFailedError("ImageInvalid", str(exc)) from exc
    if len(obs.running) != 1 or obs.l0.nested:
        raise StepFailedError(
            "NodeNotAtRest", f"L0 shows {len(obs.running)} running L1s, nested={obs.l0.nested}; expected one host"
        )
    lost = obs.vms_on(VmLocation.LOST)
    if lost:
        raise StepFailedError("VMsLost", f"VMs not running anywhere before the refresh: {', '.join(lost)}")
    resources = rt.partitioner.observe()
    need = _memory_bytes(spec)
    try:
        check_feasible(resources, spec.partition.cpus, need)
        check_headroom(resources, need, await rt.migrator.footprint() + HOST_RESERVE_BYTES)
    except PartitionError as exc:
        raise StepFailedError("PartitionInfeasible", str(exc)) from exc
    blocks = blocks_needed(need, resources.block_size)
    return StepOutcome(f"preflight passed: {spec.partition.cpus} CPUs and {blocks} memory blocks available")


async def partitioning(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    if obs.spare_partitions():
        return StepOutcome("partition exists")
    try:
        baseline = rt.record_baseline()
    except OSError as exc:  # nothing is taken unless what was offline before is on record
        raise StepFailedError(
            "StateNotWritable",
            f"cannot record what is offline before the refresh in {rt.state_dir} ({exc}): free space there or make "
            "it writable (the agent's hostPath), then start a new refresh",
        ) from exc
    asked = _memory_bytes(spec)
    try:
        taken = await rt.partitioner.take(spec.partition.cpus, asked, baseline)
    except PartitionError as exc:
        raise StepFailedError("HotUnplugFailed", str(exc)) from exc
    ranges = rt.block_ranges(taken.memory_blocks, taken.block_size)
    await _l0("partition_create", rt.l0.partition_create, taken.cpus, ranges)
    rounded = (
        f" (spec.partition.memory {spec.partition.memory} rounded up to {len(taken.memory_blocks)} whole memory "
        f"blocks of {taken.block_size >> 20} MiB)"
        if taken.memory_bytes != asked
        else ""
    )
    earlier = rt.inherited_from()
    inherited = (
        f" (refresh {earlier} left CPUs or memory offline and never ended: they are given back at the end of this one)"
        if earlier
        else ""
    )
    return StepOutcome(
        f"partition of {len(taken.cpus)} CPUs and {taken.memory_bytes >> 20} MiB created{rounded}{inherited}"
        + (f" (skipped: {'; '.join(taken.failures)})" if taken.failures else "")
    )


async def nested_enabling(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    await _l0("nested_enable", rt.l0.nested_enable)
    return StepOutcome("nested virtualization enabled", nested_on=True)


async def booting_target(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    image: Image = await rt.image(spec.target)
    if obs.target_l1 is None:
        spare = obs.spare_partitions()
        if not spare:
            raise StepFailedError("NoPartition", "no partition to boot the target host in")
        try:
            rt.record_target(image.sha256)  # write-ahead: the host is found by it whatever the file does later
        except OSError as exc:
            raise StepFailedError(
                "StateNotWritable", f"cannot record the target image in {rt.state_dir}: {exc}"
            ) from exc
        await _l0("l1_boot", rt.l0.l1_boot, spare[-1].id, image)
    try:
        with timed("target-ready"):  # the new host up, and its destination QEMUs started and listening
            prepared = await rt.migrator.prepare_targets()
    except HandoverError as exc:
        raise StepFailedError("TargetNotReady", f"the new host did not get ready for the VMs: {exc}") from exc
    return StepOutcome(f"target host {spec.target.version} booted; {len(prepared)} target VMs prepared")


async def migrating(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    source, target = obs.source_l1, obs.target_l1
    if source is None or target is None:
        raise StepFailedError("NoTargetHost", "both the old and the new host must run to hand VMs over")
    if not obs.l0.granted(source.id, target.id):
        await _l0("mem_grant", rt.l0.mem_grant, source.id, target.id, [])
    apply_policy(rt, spec)
    try:
        records = await rt.migrator.hand_over()
    except HandoverError as exc:
        raise StepFailedError("HandoverFailed", str(exc)) from exc
    failed = [r for r in records if r.outcome in (Outcome.FAILED, Outcome.LOST)]
    if failed:
        detail = "; ".join(f"{r.name}: {r.error}" for r in failed[:5])
        raise StepFailedError("HandoverFailed", f"{len(failed)} VM(s) not handed over ({detail})", records)
    paths = sorted({str(r.path) for r in records if r.outcome == Outcome.MOVED})
    return StepOutcome(f"{len(records)} VM(s) on the new host (paths: {', '.join(paths) or 'none'})", handovers=records)


async def retiring(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    source, target = obs.source_l1, obs.target_l1
    if source is not None and target is not None:
        # Retiring takes the old host away with every process in it: a VM not running on the new
        # host by now would be lost. Look again (not at the observation the step started from).
        left = {n: loc for n, loc in (await rt.migrator.locate()).items() if loc != VmLocation.TARGET}
        if left:
            where = ", ".join(f"{n} ({loc})" for n, loc in sorted(left.items()))
            raise StepFailedError(RETIRE_REFUSED, f"retire refused: VMs not on the new host: {where}")
        try:
            with timed("l0", call="l1_retire"):
                await asyncio.to_thread(rt.l0.l1_retire, source.id, target.id)
        except L0Error as exc:
            # The old host still runs: the point of no return was not passed, rollback is possible.
            raise StepFailedError(RETIRE_REFUSED, f"L0 refused to retire the old host: {exc}") from exc
    return StepOutcome("old host retired; its resources moved to the new host", switchover=True)


def _vms_lost(lost: list[str], node_state: str, records: list[HandoverRecord] | None = None) -> StepFailedError:
    """The failure no retry mends: VMs that run nowhere, named, with the state the node is left in."""
    names = ", ".join(sorted(lost))
    return StepFailedError(
        VMS_LOST, f"VMs running nowhere: {names} (their last instance died with its host); {node_state}", records
    )


def _no_pending_writes(rt: NodeRuntime) -> None:
    """An offline that timed out may still complete: until it returns, what it takes is not back yet."""
    pending = rt.partitioner.pending
    if pending:
        raise StepFailedError(
            "HotPlugPending",
            f"offline still in progress in the kernel for {', '.join(sorted(pending))}; "
            "what it takes is put back once it returns",
        )


async def _await_hot_add(rt: NodeRuntime, obs: Observation, timeout_s: float = 5.0) -> None:
    """In the new host's own kernel, the retired host's CPUs and memory arrive by hot-add, a moment
    after the L0 merged them into this host's partition: wait until the kernel shows them all (the
    memory blocks too: a block that arrives after the give-back would stay offline)."""
    me = obs.l0.l1(rt.l1_id) if rt.l1_id is not None else None
    part = obs.l0.partition(me.partition) if me is not None else None
    if part is None:
        return
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        res = await asyncio.to_thread(rt.partitioner.observe, zones=False)
        missing = sorted(part.cpus - {c.index for c in res.cpus})
        blocks = {b for r in part.memory for b in range(r.base // res.block_size, (r.base + r.size) // res.block_size)}
        missing_blocks = sorted(blocks - {b.index for b in res.blocks})
        if not missing and not missing_blocks:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise StepFailedError(
                "HotPlugPending",
                f"CPUs {missing} and memory blocks {missing_blocks} of this host's partition not visible yet",
            )
        await asyncio.sleep(0.05)


async def devirtualizing(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    # The new host hot-plugs the retired host's CPUs and memory, then owns the hardware directly.
    await _await_hot_add(rt, obs)
    left = await rt.partitioner.give_back(baseline=rt.baseline())
    if left.cpus or left.memory_blocks:
        raise StepFailedError("HotPlugFailed", f"could not online: {'; '.join(left.failures)}")
    _no_pending_writes(rt)
    rt.end_baseline()
    if obs.l0.nested:
        await _l0("nested_disable", rt.l0.nested_disable)
    return StepOutcome("nested virtualization disabled; the new host owns the machine", nested_on=False)


async def verifying(rt: NodeRuntime, spec: HostRefreshSpec, obs: Observation) -> StepOutcome:
    problems = []
    if obs.l0.nested:
        problems.append("nested still on")
    if obs.target_l1 is None or len(obs.running) != 1:
        problems.append(f"expected only the new host running, L0 shows {len(obs.running)}")
    if obs.resources_taken:
        problems.append("CPUs or memory still offline")
    if obs.writes_pending:
        problems.append(f"sysfs writes still pending: {', '.join(sorted(obs.writes_pending))}")
    # The old host is retired, so a running VM runs on the new one, whichever generation label it
    # has (after commit() the migrator calls the new generation "source" again): only lost or
    # half-migrated VMs are a problem. This keeps verification idempotent.
    adrift = [n for n, loc in obs.vms.items() if loc == VmLocation.MIGRATING]
    if adrift:
        problems.append(f"VMs not running on the new host: {', '.join(sorted(adrift)[:5])}")
    if problems:
        raise StepFailedError("VerificationFailed", "; ".join(problems))
    await rt.migrator.commit()
    lost = obs.vms_on(VmLocation.LOST)
    if lost:  # the node is done all the same: say so, and name what no retry brings back
        raise _vms_lost(lost, f"the node runs {spec.target.version} on one host, nested off, resources online")
    return StepOutcome(f"node runs {spec.target.version} with {len(obs.vms)} VM(s)")


STEPS = {
    Phase.PREFLIGHT: preflight,
    Phase.PARTITIONING: partitioning,
    Phase.NESTED_ENABLING: nested_enabling,
    Phase.BOOTING_TARGET: booting_target,
    Phase.MIGRATING: migrating,
    Phase.RETIRING: retiring,
    Phase.DEVIRTUALIZING: devirtualizing,
    Phase.VERIFYING: verifying,
}


async def roll_back(rt: NodeRuntime, obs: Observation) -> StepOutcome:
    """Undo whatever is done, in reverse order, from observed state; safe to repeat."""
    records: list[HandoverRecord] = []
    # Handing back always may copy: VMs must get home even if zero-copy is impossible now.
    rt.migrator.policy = replace(rt.migrator.policy, copy_fallback=True)
    lost: list[str] = []
    if obs.vms_on(VmLocation.TARGET) or obs.vms_on(VmLocation.MIGRATING) or obs.vms_on(VmLocation.LOST):
        records = await rt.migrator.hand_back()
        stuck = [r for r in records if r.outcome == Outcome.FAILED]
        if stuck:  # still running on the new host: the rollback must not take that host away
            raise StepFailedError("HandBackFailed", "; ".join(f"{r.name}: {r.error}" for r in stuck[:5]), records)
        # A VM that runs nowhere is never part of a clean rollback; the rest is undone all the same,
        # so the node is as it was but for the lost VMs, which the end of this step names.
        lost = sorted({r.name for r in records if r.outcome == Outcome.LOST} | set(obs.vms_on(VmLocation.LOST)))
    target = obs.target_l1
    if target is not None and obs.source_l1 is not None:
        await _l0("l1_stop", rt.l0.l1_stop, target.id)
    state = await asyncio.to_thread(rt.l0.query)
    running = {x.id for x in state.running_l1s}
    for part in state.partitions:
        if part.parent is not None and part.owner_l1 not in running:
            await _l0("partition_destroy", rt.l0.partition_destroy, part.id)
    if state.nested:
        await _l0("nested_disable", rt.l0.nested_disable)
    left = await rt.partitioner.give_back(baseline=rt.baseline())
    if left.cpus or left.memory_blocks:
        raise StepFailedError("HotPlugFailed", f"could not put back: {'; '.join(left.failures)}")
    _no_pending_writes(rt)
    rt.end_baseline()
    await rt.migrator.tidy()
    if lost:
        raise _vms_lost(
            lost,
            "the rest of the node is as it was: one host, partition destroyed, nested off, resources online",
            records,
        )
    return StepOutcome(
        "rolled back: VMs on the old host, partition destroyed, resources online",
        handovers=records,
        nested_on=False if state.nested else None,
    )


__all__ = ["STEPS", "StepFailedError", "StepOutcome", "roll_back", "rollback_done"]
