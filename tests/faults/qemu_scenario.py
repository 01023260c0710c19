"""The campaign's scenario with real guests: QEMU processes and whole hosts killed around the switchover.

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

from hostrefresh.l0 import Call, FaultRule, Status
from hostrefresh.nodeagent.guest.lab import GuestLab
from tests.e2e.harness import running, wait_for
from tests.e2e.twohost_nodes import TwoHostNode

from .world import TERMINAL, FaultWorld

VMS = ["vm1", "vm2"]
SLOW_GRANT = FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=3.0, times=1)


@dataclass(frozen=True)
class QemuCase:
    tag: str
    fault: str  # the fault's kind, for the report
    rules: tuple[FaultRule, ...]
    step: str | None  # inject when the agent runs this step (None: the rules are the fault)
    act: Callable[[TwoHostNode], None] | None
    lost: tuple[str, ...]  # guests the fault takes with it


def _qemu_of(node: TwoHostNode, vm: str, l1: int) -> int:
    """The QEMU of guest ``vm`` in host ``l1``."""
    ns = node.pidns(l1)
    for q in node.qemus():
        args = q.cmdline.split("\0")
        if q.pidns == ns and "-name" in args and args[args.index("-name") + 1] == vm:
            return q.pid
    raise AssertionError(f"no QEMU of {vm} in host {ns}: {node.qemus()}")


def _kill_qemu(vm: str, l1: int) -> Callable[[TwoHostNode], None]:
    def act(node: TwoHostNode) -> None:
        os.kill(_qemu_of(node, vm, l1), signal.SIGKILL)

    return act


CASES = [
    QemuCase(
        "dst-before", "qemu-destination-killed-before-switchover", (SLOW_GRANT,), "Migrating", _kill_qemu("vm1", 2), ()
    ),
    QemuCase(
        "src-before", "qemu-source-killed-before-switchover", (SLOW_GRANT,), "Migrating", _kill_qemu("vm1", 1), ("vm1",)
    ),
    QemuCase(
        "dst-after",
        "qemu-destination-killed-after-switchover",
        (FaultRule(call=Call.L1_RETIRE, status=Status.OK, latency_s=3.0, times=1),),
        "Retiring",
        _kill_qemu("vm1", 2),
        ("vm1",),
    ),
    QemuCase(
        "host-dies", "new-host-dies-after-boot", (SLOW_GRANT,), "Migrating", lambda n: n.kill_host(2) and None, ()
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


def qemu_kills(world: FaultWorld, full: bool) -> None:
    lab = GuestLab()
    try:
        for case in CASES:
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
        node.launch(VMS)
        for rule in case.rules:
            node.arm(rule)
        world.refresh(name, node.name)
        if case.step is not None and case.act is not None:
            wait_for(
                lambda: world.step_of(name)[0] == case.step, timeout=120, interval=0.05, what=f"{name} in {case.step}"
            )
            case.act(node)
        world.ledger.fault(case.fault)
        obj: dict[str, Any] = wait_for(
            lambda: (
                (o := world.cluster.get("hostrefresh", name)) and (o.get("status") or {}).get("phase") in TERMINAL and o
            ),
            timeout=240,
            interval=0.5,
            what=f"{name} terminal",
        )
        status = obj["status"]
        phase = status["phase"]
        world.ledger.outcome(phase)
        degraded = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
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
