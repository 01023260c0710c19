"""The campaign on two-host nodes: L0 errors, L0 query failures and agent kills of both hosts, each
case with the outcome it must end in, on machines of the machine simulator.

Each node is a real machine process: every running L1 of its simulated L0 is an isolated host (PID,
mount and UTS namespaces, an init, an agent of its own), VMs are real QEMU test guests, and the
two agents hand them over on the channel. The VM ledger is the machine itself: the QEMU processes
of each guest and the host (PID namespace) each runs in, their run state asked on the guests'
observer monitors, the hosts' VM records, and each guest's memory pattern. A lost guest (no QEMU
left), a duplicated one (two running) or one in the wrong host is seen continuously while the
refresh runs and again at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from hostrefresh import failpoints
from hostrefresh.api.phases import left_unfinished
from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.nodeagent.migrate.process import pid_alive
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.machine.vms import init_pid
from hostrefresh.sim.sysfs import FIRED_FILE, FakeRules, fired_rules, save_rules
from tests.e2e.harness import STEP_CALLS, Process, image_dir, running, wait_for
from tests.e2e.twohost_nodes import Qemu, TwoHostNode

from .world import TERMINAL, FaultWorld, faketime_env, marks_of, unwritable_dir_script

VMS = ["vm1", "vm2"]
#: How many machines run at once (each: two hosts, two guests, up to four QEMUs mid-handover).
BATCH = 4
#: A slow L0 call that holds an agent in a step long enough to be killed there.
HOLD_S = 3.0
ROLLED_BACK = frozenset({"RolledBack"})
ROLLED = frozenset({"Succeeded", "RolledBack"})
SUCCEEDED = frozenset({"Succeeded"})


@dataclass(frozen=True)
class StepFault:
    """Something done to a machine once its refresh is seen running ``step``. ``act`` returns whether
    it was done (False: not possible at this look, tried again at the next); it counts as a fault of
    ``kind`` only once done, and a step never reached fails the case."""

    step: str
    kind: str
    act: Callable[[FaultWorld, TwoHostNode], bool]


@dataclass(frozen=True)
class HostCase:
    tag: str
    rules: tuple[FaultRule, ...]
    expect: frozenset[str]  # the outcomes this case may end in (one, where the protocol decides it)
    at: StepFault | None = None  # done once the refresh runs a given step
    lost: tuple[str, ...] = ()  # guests the fault takes with it: the refresh must end Failed naming them
    paused_before: tuple[str, ...] = ()  # guests their owner pauses before the refresh starts
    ends_paused: tuple[str, ...] = ()  # guests that must end paused (as their owner left them)
    sysfs: FakeRules | None = None  # the old host's kernel refuses, delays or hangs these hot-unplugs
    sysfs_least: int = 0  # of which at least this many must fire
    silenced: int = 0  # host L1 whose agent ``at`` stops (SIGSTOP); it continues once the refresh ends
    timeouts: tuple[tuple[str, int], ...] = ()  # the refresh's spec.timeouts
    version: str = ""  # a target image of the case's own (its file is the fault's to change)
    points: tuple[tuple[int, str, str], ...] = ()  # failpoints armed for an agent: (host L1, point, action)
    clock: str = ""  # every agent's clock this far off the operator's ("+30s"; real libfaketime)
    before: StepFault | None = None  # done before the refresh starts (its step is ignored)
    reason: str = ""  # what its Degraded condition must say (a reason, or one in its message)


FORWARD_CALLS = [Call.PARTITION_CREATE, Call.NESTED_ENABLE, Call.L1_BOOT, Call.MEM_GRANT, Call.L1_RETIRE]
ROLLBACK_CALLS = [Call.L1_STOP, Call.PARTITION_DESTROY, Call.NESTED_DISABLE]


def l0_error_cases(full: bool) -> list[HostCase]:
    """Every forward call fails (before the point of no return: the refresh rolls back and recalls
    what moved); the new host's nested_disable fails after it (retried: Succeeded); the rollback's
    own calls fail after a failed memory grant (retried: RolledBack)."""
    statuses = [Status.E_HW, Status.E_BUSY, *([Status.E_IO, Status.E_RESOURCE] if full else [])]
    cases = []
    for call in FORWARD_CALLS:
        for status in statuses if full else statuses[:1]:
            for times in (1, 3) if full else (1,):
                tag = f"{call.name.lower()}-{status.name.lower()}-{times}".replace("_", "")
                cases.append(HostCase(tag, (FaultRule(call=call, status=status, times=times),), ROLLED_BACK))
    for status in statuses if full else statuses[1:2]:
        for times in (1, 3, 7) if full else (3,):
            tag = f"nesteddisable-{status.name.lower()}-{times}".replace("_", "")
            cases.append(HostCase(tag, (FaultRule(call=Call.NESTED_DISABLE, status=status, times=times),), SUCCEEDED))
    for call in ROLLBACK_CALLS if full else ROLLBACK_CALLS[::2]:
        for times in (1, 2, 4) if full else (2,):
            rules = (
                FaultRule(call=Call.MEM_GRANT, status=Status.E_HW, times=1),
                FaultRule(call=call, status=Status.E_BUSY, times=times),
            )
            cases.append(HostCase(f"rb-{call.name.lower()}-{times}".replace("_", ""), rules, ROLLED_BACK))
    return cases


def l0_query_cases(full: bool) -> list[HostCase]:
    """The L0 query fails at its n-th call, whichever agent makes it (the old host's observations,
    the handover's peer lookups on both sides, the new host's after the retire): a refresh that met
    a failing query goes on, or rolls back before the point of no return; never anything else. (Only
    the agents meet these rules: the machine simulator looks with a peek. Before, its own polling used up
    most of them, and every case seemed to end Succeeded.)"""
    nths = range(0, 60, 2) if full else range(0, 60, 20)
    return [
        HostCase(f"q{nth:02d}x{times}", (FaultRule(call=Call.QUERY, status=Status.E_IO, nth=nth, times=times),), ROLLED)
        for times in ((1, 3, 6) if full else (1,))
        for nth in nths
    ]


#: The old host's steps whose agent kills the bounded matrix keeps (the whole campaign kills in each):
#: the boot, the handover and the retire, where a new agent has the most to take up.
BOUNDED_OLD_KILL_STEPS = ("BootingTarget", "Migrating", "Retiring")


def agent_kill_cases(full: bool) -> list[HostCase]:
    """The old host's agent killed in each of its steps; the new host's agent killed while it receives
    the VMs and in each step it drives after the retire. A killed agent starts again (its host's init
    restarts it) and takes up where the refresh stands: every case must still succeed."""
    cases = [
        HostCase(
            f"old-{step.lower()}",
            (FaultRule(call=call, status=Status.OK, latency_s=HOLD_S, times=1),),
            SUCCEEDED,
            kill_agent(step, 1),
        )
        for step, call in STEP_CALLS
        if step != "Devirtualizing" and (full or step in BOUNDED_OLD_KILL_STEPS)
    ]
    cases += [
        HostCase(
            "new-migrating",
            (FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=HOLD_S, times=1),),
            SUCCEEDED,
            kill_agent("Migrating", 2),
        ),
        HostCase(
            "new-devirtualizing",
            (FaultRule(call=Call.NESTED_DISABLE, status=Status.OK, latency_s=HOLD_S, times=1),),
            SUCCEEDED,
            kill_agent("Devirtualizing", 2),
        ),
    ]
    return cases


#: The step held in each host (a slow L0 call, no fault) so that a step fault lands in it: the old
#: host's steps while it runs the guests, Migrating before the first guest moves (destinations started),
#: and the new host's steps once it runs them.
OLD_HOST_STEPS = [("Partitioning", Call.PARTITION_CREATE), ("NestedEnabling", Call.NESTED_ENABLE)]
OLD_HOST_STEPS += [("BootingTarget", Call.L1_BOOT), ("Migrating", Call.MEM_GRANT)]
NEW_HOST_STEPS = [("Retiring", Call.L1_RETIRE), ("Devirtualizing", Call.NESTED_DISABLE)]


def _hold(call: Call) -> tuple[FaultRule, ...]:
    return (FaultRule(call=call, status=Status.OK, latency_s=HOLD_S, times=1),)


def kill_agent(step: str, l1: int) -> StepFault:
    """SIGKILL host L1 ``l1``'s agent (its host's init starts a new one)."""

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        if not node.agent_pid(l1):
            return False
        node.kill_agent(l1)
        return True

    return StepFault(step, f"agent-sigkill-{'old' if l1 == 1 else 'new'}-host", act)


def qemu_of(node: TwoHostNode, vm: str, l1: int) -> Qemu | None:
    """The QEMU of guest ``vm`` in host ``l1``, if one runs there."""
    ns = node.pidns(l1)
    return next((q for q in node.qemus() if q.pidns == ns and _arg(q, "-name") == vm), None)


def qemu_dies(step: str, vm: str, l1: int, how: str) -> StepFault:
    """Guest ``vm``'s QEMU in host ``l1`` ends: SIGKILLed ("kill"), or it quits as it does when its guest
    powers off ("poweroff": QEMU runs without -no-shutdown, so a guest's power-off ends the process with
    status 0; the test guest has no power button, so its observer monitor asks QEMU to quit)."""

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        q = qemu_of(node, vm, l1)
        if q is None:
            return False
        if how == "kill":
            os.kill(q.pid, signal.SIGKILL)
        else:
            observe(node, q, l1, "quit")
        return True

    where = "old" if l1 == 1 else "new"
    return StepFault(step, f"qemu-{how}-{where}-host", act)


def stop_agent(step: str, l1: int) -> StepFault:
    """SIGSTOP host L1 ``l1``'s agent: alive, silent (its Lease not renewed), until SIGCONT."""

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        pid = node.agent_pid(l1)
        if pid is None:
            return False
        os.kill(pid, signal.SIGSTOP)
        return True

    return StepFault(step, f"agent-silenced-{'old' if l1 == 1 else 'new'}-host", act)


def stop_agent_stamp_ahead(step: str) -> StepFault:
    """The old host's agent stopped, and its last report forged an hour ahead (a report from the future is
    no sign of life: the operator must still see the silence)."""
    stop = stop_agent(step, 1)

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        if not stop.act(world, node):
            return False
        stamp = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        patch = json.dumps({"status": {"agent": {"updatedAt": stamp}}})
        world.cp.kubectl("patch", "hostrefresh", f"{node.name}-hr", "--subresource=status", "--type=merge", "-p", patch)
        return True

    return StepFault(step, "agent-silenced-report-stamped-ahead", act)


def stop_agent_forge_leases(step: str) -> StepFault:
    """The old host's agent stopped, and Leases that claim to be its node's agent written (renewed now,
    valid for an hour, not its own): the operator must still see the silence."""
    stop = stop_agent(step, 1)

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        if not stop.act(world, node):
            return False
        world.forge_leases(node.name)
        return True

    return StepFault(step, "agent-silenced-leases-forged", act)


def image_changes(step: str, version: str, how: str) -> StepFault:
    """The target image file on the node changes under the refresh: overwritten with other bytes
    ("replaced") or deleted ("removed")."""

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        path = image_dir(world.workdir) / f"vmlinuz-{version}"
        if how == "removed":
            path.unlink()
        else:
            path.write_bytes(b"not the image the refresh names\n" * 64)
        return True

    return StepFault(step, f"target-image-{how}", act)


def owner_does(step: str, vm: str, command: str) -> StepFault:
    """The guest's owner pauses ("stop") or resumes ("cont") it, in whichever host runs it as its own."""

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        # The hosts whose records hold the guest as their own, found without asking the L0: a held L0
        # call holds the simulated L0's lock, and a look through it would land only after the hold.
        own = [
            l1
            for l1 in range(1, 5)
            if node.pidns(l1) and "source" in getattr(node.records(l1).get(vm), "instances", {})
        ]
        if len(own) != 1:  # between two hosts at this look
            return False
        l1 = own[0]
        q = qemu_of(node, vm, l1)
        if q is None:
            return False
        reply = observe(node, q, l1, command)
        assert "error" not in reply, f"{node.name}: the owner's {command} of {vm} was refused: {reply['error']}"
        return True

    return StepFault(step, f"owner-{'pause' if command == 'stop' else 'resume'}", act)


MEMORY = "devices/system/memory/memory{}/state"
CPU = "devices/system/cpu/cpu{}/online"


def sysfs_cases(full: bool) -> list[HostCase]:
    """The old host's kernel refuses, delays or hangs hot-unplugs (the partitioner tries cpu7 and
    memory31 first): the partition goes on without what it cannot take, or the refresh rolls back."""
    late = FakeRules(late=[MEMORY.format(31)], hang_seconds=2.5)
    table: list[tuple[str, FakeRules, tuple[FaultRule, ...], int]] = [
        ("ebusy", FakeRules(ebusy=[MEMORY.format(31), MEMORY.format(30)]), (), 2),
        ("refuse", FakeRules(refuse=[CPU.format(7)]), (), 1),
        ("hang", FakeRules(hang=[MEMORY.format(31)], hang_seconds=2.5), (), 1),
        ("late", late, (), 1),  # the partition goes on without it; the devirtualize hands it back
        ("late-rb", late, (FaultRule(call=Call.L1_BOOT, status=Status.E_HW, times=1),), 1),  # ... so does a rollback
    ]
    if full:
        table += [
            ("ebusy-most", FakeRules(ebusy=[MEMORY.format(b) for b in range(31, 20, -1)]), (), 11),
            (
                "mixed",
                FakeRules(refuse=[CPU.format(7), CPU.format(5)], late=[MEMORY.format(30)], hang_seconds=2.0),
                (),
                3,
            ),
        ]
    return [HostCase(tag, rules, ROLLED, sysfs=fake, sysfs_least=least) for tag, fake, rules, least in table]


def silenced_cases(full: bool) -> list[HostCase]:
    """The operator declares Failed while an agent is silent (stopped, not dead): before the point of no
    return the rollback it ordered overruns its deadline; after it, the silence itself is the verdict.
    The agent that comes back still brings the node to an end, back to the old host or on to the new,
    with every guest intact, and the refresh stays Failed."""
    silence = (("agentSilenceSeconds", 20), ("rollingBackSeconds", 5))
    failed = frozenset({"Failed"})
    return [
        HostCase("rollback", _hold(Call.MEM_GRANT), failed, stop_agent("Migrating", 1), silenced=1, timeouts=silence),
        HostCase(
            "stamped", _hold(Call.MEM_GRANT), failed, stop_agent_stamp_ahead("Migrating"), silenced=1, timeouts=silence
        ),
        HostCase(
            "forged", _hold(Call.MEM_GRANT), failed, stop_agent_forge_leases("Migrating"), silenced=1, timeouts=silence
        ),
        HostCase(
            "forward", _hold(Call.NESTED_DISABLE), failed, stop_agent("Devirtualizing", 2), silenced=2, timeouts=silence
        ),
    ]


def image_cases(full: bool) -> list[HostCase]:
    """The target image replaced or removed on the node mid-refresh. Before the new host booted from it,
    the boot's check (the agent's, then the L0's as it reads the file) refuses it and the refresh rolls
    back; once the new host booted from the image it checked, the file no longer matters and the refresh
    succeeds (and never reports RolledBack)."""
    table = [
        ("Partitioning", Call.PARTITION_CREATE, "replaced", ROLLED_BACK),
        ("NestedEnabling", Call.NESTED_ENABLE, "removed", ROLLED_BACK),
        ("Retiring", Call.L1_RETIRE, "replaced", SUCCEEDED),
        ("Devirtualizing", Call.NESTED_DISABLE, "removed", SUCCEEDED),
    ]
    if full:
        table += [
            # replaced while the L0 boots from it: the L0 reads what it boots, refuses it: rolled back
            ("BootingTarget", Call.L1_BOOT, "replaced", ROLLED_BACK),
            ("Migrating", Call.MEM_GRANT, "removed", SUCCEEDED),
        ]
    cases = []
    for step, call, how, expect in table:
        tag = f"{how}-{step.lower()}"
        version = f"2.0-{tag}"
        cases.append(HostCase(tag, _hold(call), expect, image_changes(step, version, how), version=version))
    return cases


def qemu_death_cases(full: bool) -> list[HostCase]:
    """A guest's QEMU dies (killed, or its guest powers off) in each step, in the host that runs it: the
    guest is lost and the refresh must end Failed naming it, the other guest intact in the node's one
    host. A destination that dies before the switchover loses nothing (the source still runs it). A
    retire refused after the guest died in the new host rolls back and still names it lost."""
    hows = ("kill", "poweroff") if full else ("kill",)
    old = OLD_HOST_STEPS if full else OLD_HOST_STEPS[-1:]
    new = NEW_HOST_STEPS if full else NEW_HOST_STEPS[:1]
    failed = frozenset({"Failed"})
    cases = [
        HostCase(f"old-{s.lower()}-{h}", _hold(c), failed, qemu_dies(s, "vm1", 1, h), ("vm1",))
        for s, c in old
        for h in hows
    ]
    cases += [
        HostCase(f"new-{s.lower()}-{h}", _hold(c), failed, qemu_dies(s, "vm1", 2, h), ("vm1",))
        for s, c in new
        for h in hows
    ]
    cases += [
        HostCase(f"dst-migrating-{h}", _hold(Call.MEM_GRANT), ROLLED, qemu_dies("Migrating", "vm1", 2, h)) for h in hows
    ]
    refused = (FaultRule(call=Call.L1_RETIRE, status=Status.E_HW, latency_s=HOLD_S, times=1),)
    cases += [HostCase(f"rb-retiring-{h}", refused, failed, qemu_dies("Retiring", "vm1", 2, h), ("vm1",)) for h in hows]
    return cases


def owner_cases(full: bool) -> list[HostCase]:
    """The owner pauses a running guest, or resumes the guest it paused before the refresh, in each step:
    the guest ends as its owner last left it, in the new host, its memory intact."""
    steps = OLD_HOST_STEPS + NEW_HOST_STEPS
    steps = steps if full else steps[2:4]
    cases = [
        HostCase(f"pause-{s.lower()}", _hold(c), SUCCEEDED, owner_does(s, "vm1", "stop"), ends_paused=("vm1",))
        for s, c in steps
    ]
    cases += [
        HostCase(f"resume-{s.lower()}", _hold(c), SUCCEEDED, owner_does(s, "vm1", "cont"), paused_before=("vm1",))
        for s, c in steps
    ]
    return cases


def point_action(action: str) -> tuple[str, tuple[int, ...]]:
    """A case's failpoint action, ``crash`` or ``fail``, with the passes it acts at (``fail@2,3``)."""
    kind, _, at = action.partition("@")
    return kind, tuple(int(n) for n in at.split(",")) if at else (1,)


def arm_point(root: Path, point: str, action: str) -> None:
    kind, passes = point_action(action)
    failpoints.arm(root, point, kind, at=passes)


#: The L0 refuses the retire once all guests run in the new host: the rollback recalls each of them.
RETIRE_REFUSED = (FaultRule(call=Call.L1_RETIRE, status=Status.E_HW, times=1),)


def crash_point_cases(full: bool) -> list[HostCase]:
    """An agent dies at a point no outside observer can time (a failpoint): after it started a
    destination QEMU and before it recorded it; after it decided that a guest arrived and before it
    resumed and recorded it. In the new host as the guests arrive, in the old host as the rollback of a
    refused retire brings them home. The host's next agent finishes what the dead one decided, and reaps
    the QEMU nobody recorded; no guest is lost, duplicated or left paused."""
    launched, decided = failpoints.DESTINATION_LAUNCHED, failpoints.ARRIVAL_DECIDED
    finished, aborted, loaded = failpoints.SEND_FINISHED, failpoints.SEND_ABORTED, failpoints.STATE_LOADED
    cases = [
        HostCase("launched-new", (), ROLLED, points=((2, launched, "crash"),)),
        HostCase("decided-new", (), SUCCEEDED, points=((2, decided, "crash"),)),
    ]
    if full:
        cases += [
            HostCase("launched-recall", RETIRE_REFUSED, ROLLED_BACK, points=((1, launched, "crash"),)),
            HostCase("decided-recall", RETIRE_REFUSED, ROLLED_BACK, points=((1, decided, "crash"),)),
            # The sending side: it stopped its stale QEMU once the guest arrived, and died before it
            # forgot the VM; or it decided that a send failed (the receiver could not load the stream)
            # and died before it resumed its paused guest.
            HostCase("finished-new", (), SUCCEEDED, points=((1, finished, "crash"),)),
            HostCase("finished-recall", RETIRE_REFUSED, ROLLED_BACK, points=((2, finished, "crash"),)),
            HostCase("aborted-new", (), ROLLED, points=((2, loaded, "fail"), (1, aborted, "crash"))),
            HostCase(
                "aborted-recall", RETIRE_REFUSED, ROLLED_BACK, points=((1, loaded, "fail"), (2, aborted, "crash"))
            ),
        ]
    return cases


def recall_failure_cases(full: bool) -> list[HostCase]:
    """A handover fails on the receiving side: the destination QEMU will not start, or the stream does not
    load. Forward (the new host receiving) the refresh goes on or rolls back; in the rollback of a refused
    retire (the old host receiving) the recall is tried again until every guest is home, and the refresh
    ends RolledBack with nothing lost."""
    start, loaded = failpoints.DESTINATION_START, failpoints.STATE_LOADED
    return [
        HostCase("start-recall", RETIRE_REFUSED, ROLLED_BACK, points=((1, start, "fail"),)),
        HostCase("load-recall", RETIRE_REFUSED, ROLLED_BACK, points=((1, loaded, "fail"),)),
        HostCase("start-new", (), ROLLED, points=((2, start, "fail"),)),
        HostCase("load-new", (), ROLLED, points=((2, loaded, "fail"),)),
    ]


def state_dir_broken(how: str) -> StepFault:
    """The old host's view of the node's state area (the L0's handoff area, where the record of what
    was offline before the refresh lives) read-only ("read-only": a read-only bind mount) or full
    ("full": a 16 KiB tmpfs filled to the last byte), in that host's own mount namespace."""

    def act(world: FaultWorld, node: TwoHostNode) -> bool:
        script = unwritable_dir_script(node.layout.handoff, how)
        enter = ["nsenter", f"--target={init_pid(node.layout, 1)}", "--mount", "--", "sh", "-c", script]
        return subprocess.run(enter, capture_output=True, timeout=30).returncode == 0

    return StepFault("", f"state-dir-{how}", act)


def state_dir_cases(full: bool) -> list[HostCase]:
    """The node's state area cannot be written when the refresh starts: the agent cannot record what
    was offline before, so it takes nothing and rolls back, saying why."""
    return [
        HostCase(how, (), ROLLED_BACK, before=state_dir_broken(how), reason="StateNotWritable")
        for how in ("read-only", "full")
    ]


def clock_cases(full: bool) -> list[HostCase]:
    """Both agents' clocks 30 s ahead of the operator's, or behind it: liveness and deadlines are judged on
    the operator's clock, so the refresh goes through."""
    return [HostCase("ahead", (), SUCCEEDED, clock="+30s"), HostCase("behind", (), SUCCEEDED, clock="-30s")]


def chaos_cases(full: bool) -> list[HostCase]:
    """Any L0 call may fail, with some probability, a few times, from a random call on (seeded, so a
    failing machine can be rerun): wherever it lands, the refresh goes on or rolls back, never worse."""
    rng = random.Random(24)
    cases = []
    for i in range(60 if full else 4):
        status = rng.choice([Status.E_HW, Status.E_BUSY, Status.E_IO, Status.E_RESOURCE])
        rule = FaultRule(call=None, status=status, nth=rng.randrange(0, 8), times=rng.randrange(1, 5), probability=0.35)
        cases.append(HostCase(f"c{i:02d}", (rule,), frozenset({"Succeeded", "RolledBack"})))
    return cases


#: Something done to the cluster while a batch's refreshes run (the operator, the control plane), given
#: the batch's refresh names and the operator process (kept running by a supervisor, as a kubelet would).
Disruption = Callable[[FaultWorld, list[str], Process], None]


@dataclass(frozen=True)
class Batch:
    """How one batch of machines runs: what disturbs it, and whether the API server goes away."""

    during: Disruption | None = None
    api_outages: bool = False


def run_cases(
    world: FaultWorld, prefix: str, cases: list[HostCase], fault_kind: str, batch_kind: Batch | None = None
) -> None:
    for start in range(0, len(cases), BATCH):
        batch = cases[start : start + BATCH]
        # A lab per machine: guests of one name in two labs never share a RAM file.
        labs = {case.tag: GuestLab() for case in batch}
        try:
            _run_batch(world, labs, prefix, batch, fault_kind, batch_kind or Batch())
        finally:
            for tag, lab in labs.items():
                strays = asyncio.run(lab.close())
                world.ledger.check(not strays, f"{prefix}-{tag}: processes left behind: {strays}")


def _run_batch(
    world: FaultWorld, labs: dict[str, GuestLab], prefix: str, cases: list[HostCase], fault_kind: str, kind: Batch
) -> None:
    nodes = {case.tag: TwoHostNode(labs[case.tag], f"{prefix}-{case.tag}") for case in cases}
    for node in nodes.values():
        world.cluster.add_node(node.name)
        world.watch(node.name)
    machines = [
        nodes[c.tag].machine(world.cp, world.workdir, [f"{k}={v}" for k, v in faketime_env(c.clock).items()])
        if c.clock
        else nodes[c.tag].machine(world.cp, world.workdir)
        for c in cases
    ]
    operator = world.operator(f"op-{prefix}-{cases[0].tag}")
    with running(*machines), world.supervised(operator):
        old_hosts = {}
        for case in cases:
            node = nodes[case.tag]
            node.wait_up()
            node.launch(VMS)
            old_hosts[node.name] = node.pidns(1)
            if case.sysfs is not None:
                save_rules(node.layout.sysfs(1), case.sysfs)
            for vm in case.paused_before:
                world.ledger.check(owner_does("", vm, "stop").act(world, node), f"{node.name}: could not pause {vm}")
            for l1, point, action in case.points:
                arm_point(node.layout.failpoints(l1), point, action)
            if case.before is not None:
                done = case.before.act(world, node)
                if world.ledger.check(done, f"{node.name}: {case.before.kind} could not be done"):
                    world.ledger.fault(case.before.kind, two_host=True)
            if case.clock:  # counted once the agent's Lease renewals carry its clock
                world.check_clock(node.name, case.clock, two_host=True)
        marks = {node.name: marks_of(world.cluster, node.name) for node in nodes.values()}
        for case in cases:
            for rule in case.rules:
                nodes[case.tag].arm(rule)
        targets = {f"{nodes[c.tag].name}-hr": (c.at, nodes[c.tag]) for c in cases if c.at is not None}
        lost = frozenset(f"{nodes[c.tag].name}/{vm}" for c in cases for vm in c.lost)
        names = [f"{n.name}-hr" for n in nodes.values()]
        with (
            world.monitor(api_outages=kind.api_outages),
            VmLedger(world, list(nodes.values()), lost_ok=lost),
            StepFaults(world, targets) as step_faults,
        ):
            for case in cases:
                node = nodes[case.tag]
                timeouts = {"agentSilenceSeconds": 20, **dict(case.timeouts)}
                image = {"target": world.cluster.target_image(case.version)} if case.version else {}
                world.refresh(f"{node.name}-hr", node.name, timeouts=timeouts, **image)
            if kind.during is not None:
                kind.during(world, names, operator)
            try:
                objs = {o["metadata"]["name"]: o for o in world.wait_terminal(names)}
            except AssertionError:  # say where each refresh stands, and what its machine logged
                stuck = world.named(names)
                for case in cases:
                    node, name = nodes[case.tag], f"{nodes[case.tag].name}-hr"
                    status = (stuck.get(name) or {}).get("status") or {}
                    if status.get("phase") not in TERMINAL:
                        world.ledger.check(
                            False,
                            f"{name}: never ended: phase {status.get('phase')}, agent {status.get('agent')}, "
                            f"{world.why(status)}\n{node.logs()[-4000:]}",
                        )
                raise
            for case in cases:
                if case.silenced:
                    name = f"{nodes[case.tag].name}-hr"
                    objs[name] = _resume_silenced(world, nodes[case.tag], case.silenced, name)
        for name, step in sorted(step_faults.missed().items()):
            world.ledger.check(False, f"{name}: the fault targeted at {step} never happened (the step was not seen)")
        for case in cases:
            node = nodes[case.tag]
            obj = objs[f"{node.name}-hr"]
            world.ledger.fault(fault_kind, fired(node), two_host=True)
            for l1, point, action in case.points:
                hit = failpoints.fired(node.layout.failpoints(l1), point)
                world.ledger.check(hit, f"{node.name}: failpoint {point} ({action}) of host L1 {l1} never reached")
                how, passes = point_action(action)
                host = "old" if l1 == 1 else "new"
                world.ledger.fault(f"{how}-at-{point}-{host}-host", len(passes) * int(hit), two_host=True)
            if case.sysfs is not None:  # counted as the old host's fake kernel applied them
                # (the machine keeps a retired host's record of them among its logs)
                kept = node.layout.base / "logs" / f"l1-1-{FIRED_FILE}"
                applied = len(fired_rules(node.layout.sysfs(1))) or len(
                    kept.read_text().splitlines() if kept.exists() else []
                )
                least = case.sysfs_least
                world.ledger.check(applied >= least, f"{node.name}: {applied} sysfs faults fired, {least} expected")
                world.ledger.fault("sysfs", applied, two_host=True)
            check_machine(world, node, obj, case, marks[node.name], old_host=old_hosts[node.name])


def _resume_silenced(world: FaultWorld, node: TwoHostNode, l1: int, name: str) -> dict[str, Any]:
    """The stopped agent continues; returns the refresh once that agent brought its node to an end."""
    pid = node.agent_pid(l1)
    if pid is not None:
        os.kill(pid, signal.SIGCONT)

    def ended() -> dict[str, Any] | None:
        obj = world.cluster.get("hostrefresh", name)
        status = (obj or {}).get("status") or {}
        machine_ended = len(node.running_l1s()) == 1 and not node.l0_state().nested
        return obj if obj and not left_unfinished(status) and machine_ended else None

    try:
        found: dict[str, Any] = wait_for(ended, timeout=180, interval=0.5, what=f"{name}: the node brought to an end")
        return found
    except AssertionError as exc:
        world.ledger.check(False, f"{exc}\n{node.logs()[-2500:]}")
        return world.cluster.get("hostrefresh", name) or {}


def fired(node: TwoHostNode) -> int:
    """The faults the node's L0 rules actually returned (latency-only rules hold a step; they are no fault)."""
    with open_l0("sim", node.layout.l0_state) as l0:
        fired = sum(r.fired for r in l0.sim_faults() if r.status != 0)
        l0.sim_clear_faults()
    return fired


def _survivors(node: TwoHostNode, old_host: str) -> list[int]:
    """Processes still in the retired host's PID namespace. A namespace's number (its inode) is reused
    once it is freed: when the one named ``old_host`` now has another host's init (another machine's, or
    this machine's next host), the old host is gone and those processes are that host's."""
    members = node.members(old_host)
    for pid in members:
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if "hostrefresh.sim.machine.hostinit" in argv and (
                f"--node-dir={node.layout.base}" not in argv or "--l1=1" not in argv
            ):
                return []
    return members


def check_machine(
    world: FaultWorld, node: TwoHostNode, obj: dict[str, Any], case: HostCase, marks: Any, old_host: str | None = None
) -> None:
    """Every invariant of a finished two-host refresh, on the machine and in the API."""
    check = world.ledger.check
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    phase = status.get("phase")
    world.ledger.outcome(str(phase))
    check(
        phase in case.expect,
        f"{name}: ended {phase}, expected {sorted(case.expect)}: {world.why(status)}\n{node.logs()[-2500:]}",
    )
    world.check_degraded(name, status)
    if case.reason:
        degraded_now: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
        check(
            degraded_now.get("reason") == case.reason or f"({case.reason})" in (degraded_now.get("message") or ""),
            f"{name}: Degraded says {degraded_now.get('reason')}: {degraded_now.get('message')}, not {case.reason}",
        )
    if case.lost:
        degraded: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
        check(
            degraded.get("reason") == "VMsLost" and all(v in degraded.get("message", "") for v in case.lost),
            f"{name}: guests {case.lost} lost, yet Degraded says {degraded.get('reason')}: {degraded.get('message')}",
        )
    state = node.l0_state()
    running_l1s = [x.id for x in state.running_l1s]
    check(len(running_l1s) == 1, f"{name}: hosts running {running_l1s}")
    check(not state.nested, f"{name}: nested virtualization still on ({state.summary()})")
    check(len(state.partitions) == 1, f"{name}: {len(state.partitions)} partitions ({state.summary()})")
    if phase == "RolledBack":
        check(running_l1s == [1], f"{name}: rolled back but host L1 1 is not the one running: {running_l1s}")
    if phase == "Succeeded":
        check(1 not in running_l1s, f"{name}: succeeded but the old host still runs")
        survivors = _survivors(node, old_host) if old_host else []
        check(not survivors, f"{name}: processes of the retired host survived it: {survivors}")
    alive = [v for v in VMS if v not in case.lost]
    qemus = node.qemus()
    check(len(qemus) == len(alive), f"{name}: {len(qemus)} QEMUs for {len(alive)} live guests: {qemus}")
    if len(running_l1s) == 1:
        l1 = running_l1s[0]
        ns = node.pidns(l1)
        check(all(q.pidns == ns for q in qemus), f"{name}: a QEMU outside the node's one host: {qemus}")
        records = node.records(l1)
        # A lost guest's record stays, for a person to look at (and Preflight refuses the node meanwhile).
        check(
            sorted(records) == sorted(VMS),
            f"{name}: host L1 {l1} records {sorted(records)}, runs {alive}, lost {list(case.lost)}",
        )
        check(
            all(r.owner == "source" and list(r.instances) == ["source"] for v, r in records.items() if v in alive),
            f"{name}: a record not settled as the host's own: {records}",
        )
        check(node.channel_empty(), f"{name}: the handover channel still holds {node.channel_files()}")
        for vm in alive:  # as its owner left it; then the owner resumes it, so that its pattern can advance
            q = qemu_of(node, vm, l1)
            state_now = _run_state(node, q, l1) if q is not None else None
            expected = "paused" if vm in case.ends_paused else "running"
            check(
                state_now == expected,
                f"{name}: guest {vm} is {state_now}, its owner left it {expected}\n{node.logs()[-3000:]}",
            )
            if q is not None and state_now == "paused":
                observe(node, q, l1, "cont")
        try:
            node.verify_all(alive)  # whole memory pattern, still advancing, in the host that runs it
            verified = True
        except AssertionError as exc:
            verified = False
            check(False, f"{name}: guest pattern: {exc}")
        world.ledger.vms(len(alive))
        check(verified, f"{name}: guests not intact")
    world.check_marks(name, node.name, marks)


# -- continuous checks -----------------------------------------------------------------------------


class VmLedger:
    """Looks at every machine's guests while the refreshes run: a guest with no QEMU at all is lost,
    a guest with two QEMUs both running it is duplicated. A look that cannot ask a monitor (it is
    busy, or the QEMU is exiting) skips that instance for that look, never the whole check."""

    def __init__(self, world: FaultWorld, nodes: list[TwoHostNode], lost_ok: frozenset[str] = frozenset()) -> None:
        self.world = world
        self.nodes = nodes
        self.lost_ok = lost_ok
        self.looks = 0
        self._seen: dict[str, set[int]] = {}  # node/guest -> the QEMUs last seen running it
        self._lost: set[str] = set()  # reported once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vm-ledger", daemon=True)
        self.error: BaseException | None = None

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.2):
                for node in self.nodes:
                    self._look(node)
                self.looks += 1
        except BaseException as exc:  # a ledger that stopped must fail the run, not pass it
            self.error = exc

    def _look(self, node: TwoHostNode) -> None:
        per_vm: dict[str, list[Qemu]] = {vm: [] for vm in VMS}
        for q in node.qemus():
            vm = _arg(q, "-name")
            if vm in per_vm:
                per_vm[vm].append(q)
        hosts = {node.pidns(l1): l1 for l1 in range(1, 5)}
        for vm, qs in per_vm.items():
            key = f"{node.name}/{vm}"
            if key in self.lost_ok:
                continue
            if qs:
                self._seen[key] = {q.pid for q in qs}
                self.world.ledger.check(True, key)
            elif key not in self._lost:
                self._no_qemu(node, vm, key)
            if len(qs) > 1:
                # Asked one after the other, a source seen running and then a destination seen running
                # may be a handover that switched in between. Two run at once only if the first is
                # still running when asked again after the second said so.
                first = [_run_state(node, q, hosts.get(q.pidns)) for q in qs]
                again = [_run_state(node, q, hosts.get(q.pidns)) for q in qs] if first.count("running") > 1 else first
                # (Between i's two answers come j's first answer if j was asked after i, else its second.)
                twice = [
                    (qs[i].pid, qs[j].pid)
                    for i in range(len(qs))
                    for j in range(len(qs))
                    if i != j and first[i] == again[i] == "running" and (first[j] if j > i else again[j]) == "running"
                ]
                self.world.ledger.check(
                    not twice, f"{node.name}: guest {vm} runs in two QEMUs at once: {twice} of {qs}"
                )

    def _no_qemu(self, node: TwoHostNode, vm: str, key: str) -> None:
        """A look found no QEMU of ``vm``. Lost, unless a QEMU seen running it before still lives (a
        look of /proc that missed it: said, not counted) or one shows up when looked for again."""
        still = sorted(p for p in self._seen.get(key, set()) if pid_alive(p, "qemu-system"))
        if still:
            say = self.world.ledger.say
            if say is not None:
                say(f"note: {key}: a look of /proc missed QEMU {still}, which still runs")
            return
        again = [q for q in node.qemus() if _arg(q, "-name") == vm]
        if again:
            self._seen[key] = {q.pid for q in again}
            return
        self._lost.add(key)
        when = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        self.world.ledger.check(
            False,
            f"{node.name}: guest {vm} has no QEMU at all (lost) at {when}; it ran in {sorted(self._seen.get(key, set()))}",
        )

    def __enter__(self) -> VmLedger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.world.ledger.check(self.error is None, f"the VM ledger stopped: {self.error!r}")
        self.world.ledger.check(self.looks > 0, "the VM ledger never looked")


def _arg(q: Qemu, flag: str, nth: int = 0) -> str | None:
    args = q.cmdline.split("\0")
    found = [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]
    return found[nth] if len(found) > nth else None


def _observer(node: TwoHostNode, q: Qemu, l1: int) -> QEMUMonitorProtocol:
    """A client of QEMU ``q``'s observer monitor (its second ``-qmp``; the agent holds the first)."""
    spec = _arg(q, "-qmp", 1)
    assert spec is not None, f"QEMU {q.pid} has no observer monitor"
    return QEMUMonitorProtocol(str(node.layout.outside(spec.removeprefix("unix:").split(",")[0], l1)))


def observe(node: TwoHostNode, q: Qemu, l1: int, command: str) -> dict[str, Any]:
    """``command`` on QEMU ``q``'s observer monitor (the guest's owner, as the campaign plays it)."""
    qmp = _observer(node, q, l1)
    try:
        qmp.connect()
        qmp.settimeout(5.0)
        return qmp.cmd_raw(command)
    finally:
        with contextlib.suppress(Exception):
            qmp.close()


def _run_state(node: TwoHostNode, q: Qemu, l1: int | None) -> str | None:
    """The run state of QEMU ``q`` asked on its observer monitor; None if unknown."""
    if l1 is None:
        return None
    try:
        reply = observe(node, q, l1, "query-status")
        return str((reply.get("return") or {}).get("status"))
    except Exception:  # busy, exiting or gone: unknown this look
        return None


class StepFaults:
    """Does each refresh's step fault once its node's refresh is seen running the step chosen for it;
    a fault counts only once done there, and a target never reached is reported."""

    def __init__(self, world: FaultWorld, targets: dict[str, tuple[StepFault, TwoHostNode]]) -> None:
        self.world = world
        self.targets = targets
        self.done: set[str] = set()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="step-faults", daemon=True)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.02):
                self._look()
        except BaseException as exc:  # a fault-doer that stopped must fail the run, not pass it
            self.error = exc

    def _look(self) -> None:
        try:
            seen = self.world.named([n for n in self.targets if n not in self.done])
        except Exception:  # a failed look is retried; a target never reached is reported
            return
        for name, (fault, node) in self.targets.items():
            if name in self.done:
                continue
            agent = ((seen.get(name) or {}).get("status") or {}).get("agent") or {}
            if agent.get("step") != fault.step or agent.get("stepState") != "Running":
                continue
            with contextlib.suppress(AssertionError, OSError, ConnectionError):  # gone or busy: next look
                if fault.act(self.world, node):
                    self.done.add(name)
                    self.world.ledger.fault(fault.kind, two_host=True)

    def missed(self) -> dict[str, str]:
        return {name: fault.step for name, (fault, _) in self.targets.items() if name not in self.done}

    def __enter__(self) -> StepFaults:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.world.ledger.check(self.error is None, f"the step faults stopped: {self.error!r}")


def two_host_l0_errors(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thl0", l0_error_cases(full), "l0-error")


def two_host_l0_queries(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thq", l0_query_cases(full), "l0-query-error")


def two_host_l0_chaos(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thc", chaos_cases(full), "l0-error")


def two_host_agent_kills(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thk", agent_kill_cases(full), "l0-error")  # (hold rules only: the kills are the faults)


def two_host_qemu_deaths(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thd", qemu_death_cases(full), "l0-error")  # (the retire refused after a death counts too)


def two_host_sysfs(world: FaultWorld, full: bool) -> None:
    run_cases(world, "ths", sysfs_cases(full), "l0-error")  # (the kernel's refusals are counted apart)


def two_host_silenced_agents(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thsil", silenced_cases(full), "l0-error")  # (hold rules only: the silences are the faults)


def two_host_images(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thi", image_cases(full), "l0-error")  # (hold rules only: the image changes are the faults)


def two_host_owner(world: FaultWorld, full: bool) -> None:
    run_cases(world, "tho", owner_cases(full), "l0-error")  # (hold rules only: the owner's acts are the faults)


def two_host_crash_points(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thcr", crash_point_cases(full), "l0-error")  # (the retire refused counts too)


def two_host_recall_failures(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thrc", recall_failure_cases(full), "l0-error")  # (the retire refused counts too)


def two_host_state_dir(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thsd", state_dir_cases(full), "l0-error")  # (no L0 rule: the state area is the fault)


def two_host_clock_skew(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thck", clock_cases(full), "l0-error")  # (no L0 rule: the skews are the faults)


def _under_way(world: FaultWorld, names: list[str]) -> bool:
    """Whether one of ``names`` is started and not over (a disruption after the end tests nothing)."""
    try:
        objs = list(world.named(names).values())
    except Exception:  # the API server is away: what runs, runs on
        return True
    return any(
        (o.get("status") or {}).get("directive") in ("Proceed", "RollBack")
        and ((o.get("status") or {}).get("phase") not in ("Succeeded", "RolledBack", "Failed"))
        for o in objs
    )


def _kill_operator(world: FaultWorld, names: list[str], operator: Process) -> None:
    """The operator SIGKILLed three times, 3 s apart, while the machines refresh; its supervisor starts
    it again."""
    wait_for(lambda: _under_way(world, names), timeout=120, interval=0.2, what="a refresh under way")
    for _ in range(3):
        time.sleep(3.0)
        if _under_way(world, names):
            operator.kill()
            world.ledger.fault("operator-sigkill", two_host=True)


def _restart_control_plane(world: FaultWorld, names: list[str], operator: Process) -> None:
    """kube-apiserver and etcd crash and come back while the machines refresh: every refresh succeeds."""
    wait_for(lambda: _under_way(world, names), timeout=120, interval=0.2, what="a refresh under way")
    for component, down in [("kube-apiserver", 2.0), ("etcd", 2.0), ("kube-apiserver", 0.0)]:
        time.sleep(2.0)
        if _under_way(world, names):
            world.cp.crash_restart(component, down_seconds=down)
            world.ledger.fault(f"{component}-restart", two_host=True)


#: Calls held for a moment (no fault: latency only) so that a disruption meets every refresh under way.
HELD_CALLS = (Call.PARTITION_CREATE, Call.L1_BOOT, Call.MEM_GRANT, Call.L1_RETIRE, Call.NESTED_DISABLE)


def _plain_cases(prefix: str, count: int) -> list[HostCase]:
    holds = tuple(FaultRule(call=call, status=Status.OK, latency_s=1.5, times=1) for call in HELD_CALLS)
    return [HostCase(f"{prefix}{i}", holds, SUCCEEDED) for i in range(count)]


def _edit_specs(world: FaultWorld, names: list[str], operator: Process) -> None:
    """Each refresh's spec edited once it runs BootingTarget: each edit refused, the refresh goes on."""
    for name in names:

        def booting(n: str = name) -> bool:
            return world.step_of(n)[0] == "BootingTarget"

        wait_for(booting, timeout=120, interval=0.05, what=f"{name} booting")
        world.edit_refused(name, two_host=True)


def two_host_spec_edits(world: FaultWorld, full: bool) -> None:
    holds = (FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=6.0, times=1),)
    cases = [HostCase(f"m{i}", holds, SUCCEEDED) for i in range(BATCH)]
    run_cases(world, "thse", cases, "l0-error", Batch(during=_edit_specs))


def two_host_operator_kills(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thok", _plain_cases("m", BATCH), "operator-sigkill", Batch(during=_kill_operator))


def two_host_control_plane(world: FaultWorld, full: bool) -> None:
    run_cases(
        world, "thcp", _plain_cases("m", BATCH), "api-restart", Batch(during=_restart_control_plane, api_outages=True)
    )
