"""The campaign's scenario with real guests: whole hosts killed or never booting, and QEMU processes
killed in a VMM-only refresh (a guest's QEMU dying in each step of a host refresh is
twohost_scenario's ``two-host-qemu-deaths``).

Each case is a machine of the machine simulator (two real hosts, real QEMU test guests). A guest
whose last QEMU dies runs nowhere: the refresh must name it and end Failed (VMsLost), undo the rest,
never resume a stale instance and never end clean; every other guest must end intact (its whole
memory pattern verified) in the node's one host.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hostrefresh import failpoints
from hostrefresh.l0 import Call, FaultRule, Status
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.guest.qemubuilds import installed_build, other_build
from tests.e2e.harness import running, wait_for
from tests.e2e.twohost_nodes import Qemu, TwoHostNode

from .twohost_scenario import arm_point, fired, observe, point_action
from .world import TERMINAL, FaultWorld

VMS = ["vm1", "vm2"]
SLOW_GRANT = FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=3.0, times=1)


@dataclass(frozen=True)
class QemuCase:
    tag: str
    fault: str  # the fault's kind, for the report
    rules: tuple[FaultRule, ...]
    step: str | None  # act when the agent runs this step (None: at once; the act waits for its moment)
    act: Callable[[TwoHostNode], object] | None  # None: the rules are the fault (its result is ignored)
    lost: tuple[str, ...]  # guests the fault takes with it
    # VMM: a VMM-only refresh of guests that start on an older QEMU build (copied RAM, so that each
    # move lasts long enough to be hit), to the installed build, in the node's one host.
    scope: str = "Host"
    points: tuple[tuple[str, str], ...] = ()  # failpoints (point, action) armed for the host's agent


def _vmm_qemu(node: TwoHostNode, vm: str, *, old: bool) -> Qemu | None:
    """The QEMU of guest ``vm`` on the older build (``old``) or on the target's copy of the installed one:
    a VMM refresh runs both in one host."""
    older = os.path.realpath(other_build().binary)
    for q in node.qemus():
        args = q.cmdline.split("\0")
        try:
            exe = os.path.realpath(os.readlink(f"/proc/{q.pid}/exe"))
        except OSError:
            continue
        if "-name" in args and args[args.index("-name") + 1] == vm and (exe == older) == old:
            return q
    return None


def _when_prepared_kill(vm: str, *, old: bool, poweroff: bool = False) -> Callable[[TwoHostNode], None]:
    """Once the refresh has started the new QEMUs (before the first guest moves), kill ``vm``'s old or new
    QEMU, or (``poweroff``) have it quit as it does when its guest powers off."""

    def act(node: TwoHostNode) -> None:
        wait_for(lambda: _vmm_qemu(node, VMS[0], old=False), timeout=60, interval=0.005, what="the new QEMUs")
        q = wait_for(lambda: _vmm_qemu(node, vm, old=old), timeout=10, interval=0.005, what=f"{vm}'s QEMU")
        if poweroff:
            observe(node, q, node.running_l1s()[0], "quit")
        else:
            os.kill(q.pid, signal.SIGKILL)

    return act


CASES = [
    QemuCase("host-dies", "new-host-dies-after-boot", (SLOW_GRANT,), "Migrating", lambda n: n.kill_host(2), ()),
    QemuCase(
        "vmm-src",
        "qemu-old-build-killed-in-vmm-refresh",
        (),
        None,
        _when_prepared_kill("vm2", old=True),
        ("vm2",),
        scope="VMM",
    ),
    QemuCase(
        "vmm-src-poweroff",
        "qemu-old-build-powered-off-in-vmm-refresh",
        (),
        None,
        _when_prepared_kill("vm2", old=True, poweroff=True),
        ("vm2",),
        scope="VMM",
    ),
    QemuCase(
        "vmm-dst",
        "qemu-new-build-killed-in-vmm-refresh",
        (),
        None,
        _when_prepared_kill("vm2", old=False),
        (),
        scope="VMM",
    ),
    QemuCase(
        "no-boot",
        "new-host-fails-to-boot",
        (FaultRule(call=Call.L1_BOOT, status=Status.E_HW, times=1),),
        None,
        None,
        (),
    ),
]


#: The whole campaign's: the VMM-only refresh's agent at its failpoints. Its new QEMU will not start,
#: or the agent dies right after starting one and before recording it (its next agent reaps that QEMU
#: and goes on). Nothing may be lost, nothing left running twice.
FAILPOINT_CASES = [
    QemuCase(
        f"vmm-{point}",
        f"{action}-at-{point}-vmm",
        (),
        None,
        None,
        (),
        scope="VMM",
        points=((point, action),),
    )
    for point, action in [(failpoints.DESTINATION_START, "fail"), (failpoints.DESTINATION_LAUNCHED, "crash")]
]
#: The second guest's new QEMU will not start (the refresh rolls back), and then neither does the first
#: guest's older QEMU that the rollback starts to take it back: the recall is tried again.
FAILPOINT_CASES.append(
    QemuCase(
        "vmm-recall-start",
        "recall-start-fails-vmm",
        (),
        None,
        None,
        (),
        scope="VMM",
        points=((failpoints.DESTINATION_START, "fail@2,3"),),
    )
)


#: The bounded matrix's cases: a killed new host, and a VMM-only refresh's old QEMU powered off and
#: new QEMU killed (the old QEMU killed and the host that fails to boot are the whole campaign's; the
#: boot failure is two-host-l0-errors' too).
BOUNDED_CASES = ("host-dies", "vmm-src-poweroff", "vmm-dst")


def qemu_kills(world: FaultWorld, full: bool) -> None:
    lab = GuestLab()
    try:
        for case in CASES + FAILPOINT_CASES if full else [c for c in CASES if c.tag in BOUNDED_CASES]:
            _run_case(world, lab, case)
    finally:
        strays = asyncio.run(lab.close())
        world.ledger.check(not strays, f"processes left behind: {strays}")


def _run_case(world: FaultWorld, lab: GuestLab, case: QemuCase) -> None:
    check = world.ledger.check
    node = TwoHostNode(lab, f"qk-{case.tag}")
    world.cluster.add_node(node.name)
    name = f"{node.name}-hr"
    machine = node.machine(world.cp, world.workdir)
    with running(machine, world.operator(f"op-{case.tag}")):
        node.wait_up()
        if case.scope == "VMM":
            node.launch(VMS, qemu=str(other_build().binary), shared=False, memory_mib=1024)
            target = world.cluster.target_qemu(installed_build().binary, "qemu-installed")
            world.refresh(name, node.name, scope="VMM", target=target, handover={"maxParallel": 1})
        else:
            node.launch(VMS)
        for rule in case.rules:
            node.arm(rule)
        for point, action in case.points:
            arm_point(node.layout.failpoints(1), point, action)
        if case.scope != "VMM":
            world.refresh(name, node.name)
        if case.act is not None:
            if case.step is not None:
                wait_for(
                    lambda: world.step_of(name)[0] == case.step,
                    timeout=120,
                    interval=0.05,
                    what=f"{name} in {case.step}",
                )
            case.act(node)
            world.ledger.fault(case.fault, two_host=True)
        obj: dict[str, Any] = wait_for(
            lambda: (
                (o := world.cluster.get("hostrefresh", name)) and (o.get("status") or {}).get("phase") in TERMINAL and o
            ),
            timeout=240,
            interval=0.5,
            what=f"{name} terminal",
        )
        for point, action in case.points:  # counted once the point itself says it fired
            hit = failpoints.fired(node.layout.failpoints(1), point)
            check(hit, f"{name}: failpoint {point} ({action}) never reached")
            world.ledger.fault(case.fault, len(point_action(action)[1]) * int(hit), two_host=True)
        if case.act is None and case.rules:  # the L0 rule is the fault: it counts once it fired
            count = fired(node)
            check(count > 0, f"{name}: the L0 fault {case.fault} never fired")
            world.ledger.fault(case.fault, count, two_host=True)
        status = obj["status"]
        phase = status["phase"]
        world.ledger.outcome(phase)
        degraded: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
        if case.lost:
            check(
                phase == "Failed"
                and degraded.get("reason") == "VMsLost"
                and all(v in degraded.get("message", "") for v in case.lost),
                f"{name}: guests {case.lost} lost, yet it ended {phase} ({degraded.get('reason')}: {degraded.get('message')})",
            )
        else:
            check(phase in ("Succeeded", "RolledBack"), f"{name}: ended {phase}: {degraded}\n{node.logs()[-3000:]}")
        running_l1s = node.running_l1s()
        check(len(running_l1s) == 1, f"{name}: hosts running {running_l1s}")
        check(not node.l0_state().nested, f"{name}: nested still on")
        alive = [v for v in VMS if v not in case.lost]
        qemus = node.qemus()
        check(len(qemus) == len(alive), f"{name}: {len(qemus)} QEMUs for {len(alive)} live guests: {qemus}")
        if running_l1s:
            ns = node.pidns(running_l1s[0])
            check(all(q.pidns == ns for q in qemus), f"{name}: a QEMU outside the node's one host")
        try:
            node.verify_all(alive)  # whole memory pattern, still advancing, in the host that runs it
            verified = True
        except AssertionError as exc:
            verified = False
            check(False, f"{name}: guest pattern: {exc}")
        world.ledger.vms(len(alive))
        check(verified, f"{name}: guests not intact")
