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
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.sim.guest.lab import GuestLab
from tests.e2e.harness import STEP_CALLS, Process, running
from tests.e2e.twohost_nodes import Qemu, TwoHostNode

from .world import FaultWorld, marks_of

VMS = ["vm1", "vm2"]
#: How many machines run at once (each: two hosts, two guests, up to four QEMUs mid-handover).
BATCH = 4
#: A slow L0 call that holds an agent in a step long enough to be killed there.
HOLD_S = 2.0
ROLLED_BACK = frozenset({"RolledBack"})
SUCCEEDED = frozenset({"Succeeded"})


@dataclass(frozen=True)
class HostCase:
    tag: str
    rules: tuple[FaultRule, ...]
    expect: frozenset[str]  # the outcomes this case may end in (one, where the protocol decides it)
    kill: tuple[str, int] | None = None  # SIGKILL host L1 n's agent once the refresh runs this step


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
    for call in ROLLBACK_CALLS:
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
    a failing query goes on, or rolls back before the point of no return; never anything else."""
    nths = range(0, 60, 2) if full else range(0, 60, 12)
    return [
        HostCase(
            f"q{nth:02d}x{times}", (FaultRule(call=Call.QUERY, status=Status.E_IO, nth=nth, times=times),), SUCCEEDED
        )
        for times in ((1, 3, 6) if full else (1,))
        for nth in nths
    ]


def agent_kill_cases(full: bool) -> list[HostCase]:
    """The old host's agent killed in each of its steps; the new host's agent killed while it receives
    the VMs and in each step it drives after the retire. A killed agent starts again (its host's init
    restarts it) and takes up where the refresh stands: every case must still succeed."""
    cases = [
        HostCase(
            f"old-{step.lower()}",
            (FaultRule(call=call, status=Status.OK, latency_s=HOLD_S, times=1),),
            SUCCEEDED,
            (step, 1),
        )
        for step, call in STEP_CALLS
        if step != "Devirtualizing"
    ]
    cases += [
        HostCase(
            "new-migrating",
            (FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=HOLD_S, times=1),),
            SUCCEEDED,
            ("Migrating", 2),
        ),
        HostCase(
            "new-devirtualizing",
            (FaultRule(call=Call.NESTED_DISABLE, status=Status.OK, latency_s=HOLD_S, times=1),),
            SUCCEEDED,
            ("Devirtualizing", 2),
        ),
    ]
    return cases


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
    machines = [node.machine(world.cp, world.workdir) for node in nodes.values()]
    operator = world.operator(f"op-{prefix}-{cases[0].tag}")
    with running(*machines), world.supervised(operator):
        old_hosts = {}
        for node in nodes.values():
            node.wait_up()
            node.launch(VMS)
            old_hosts[node.name] = node.pidns(1)
        marks = {node.name: marks_of(world.cluster, node.name) for node in nodes.values()}
        for case in cases:
            for rule in case.rules:
                nodes[case.tag].arm(rule)
        kills = {f"{nodes[c.tag].name}-hr": (c.kill, nodes[c.tag]) for c in cases if c.kill is not None}
        names = [f"{n.name}-hr" for n in nodes.values()]
        with (
            world.monitor(api_outages=kind.api_outages),
            VmLedger(world, list(nodes.values())),
            AgentKiller(world, kills) as killer,
        ):
            for node in nodes.values():
                world.refresh(f"{node.name}-hr", node.name)
            if kind.during is not None:
                kind.during(world, names, operator)
            objs = {o["metadata"]["name"]: o for o in world.wait_terminal(names)}
        for name, step in sorted(killer.missed().items()):
            world.ledger.check(
                False, f"{name}: the agent kill targeted at {step} never happened (the step was not seen)"
            )
        for case in cases:
            node = nodes[case.tag]
            obj = objs[f"{node.name}-hr"]
            world.ledger.fault(fault_kind, fired(node), two_host=True)
            check_machine(world, node, obj, case.expect, marks[node.name], old_host=old_hosts[node.name])


def fired(node: TwoHostNode) -> int:
    """The faults the node's L0 rules actually returned (latency-only rules hold a step; they are no fault)."""
    with open_l0("sim", node.layout.l0_state) as l0:
        fired = sum(r.fired for r in l0.sim_faults() if r.status != 0)
        l0.sim_clear_faults()
    return fired


def check_machine(
    world: FaultWorld,
    node: TwoHostNode,
    obj: dict[str, Any],
    expect: frozenset[str],
    marks: Any,
    lost: tuple[str, ...] = (),
    old_host: str | None = None,
) -> None:
    """Every invariant of a finished two-host refresh, on the machine and in the API."""
    check = world.ledger.check
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    phase = status.get("phase")
    world.ledger.outcome(str(phase))
    check(
        phase in expect, f"{name}: ended {phase}, expected {sorted(expect)}: {world.why(status)}\n{node.logs()[-2500:]}"
    )
    world.check_degraded(name, status)
    state = node.l0_state()
    running_l1s = [x.id for x in state.running_l1s]
    check(len(running_l1s) == 1, f"{name}: hosts running {running_l1s}")
    check(not state.nested, f"{name}: nested virtualization still on ({state.summary()})")
    check(len(state.partitions) == 1, f"{name}: {len(state.partitions)} partitions ({state.summary()})")
    if phase == "RolledBack":
        check(running_l1s == [1], f"{name}: rolled back but host L1 1 is not the one running: {running_l1s}")
    if phase == "Succeeded":
        check(1 not in running_l1s, f"{name}: succeeded but the old host still runs")
        survivors = node.members(old_host) if old_host else []
        check(not survivors, f"{name}: processes of the retired host survived it: {survivors}")
    alive = [v for v in VMS if v not in lost]
    qemus = node.qemus()
    check(len(qemus) == len(alive), f"{name}: {len(qemus)} QEMUs for {len(alive)} live guests: {qemus}")
    if len(running_l1s) == 1:
        l1 = running_l1s[0]
        ns = node.pidns(l1)
        check(all(q.pidns == ns for q in qemus), f"{name}: a QEMU outside the node's one host: {qemus}")
        records = node.records(l1)
        check(sorted(records) == sorted(alive), f"{name}: host L1 {l1} records {sorted(records)}, runs {alive}")
        check(
            all(r.owner == "source" and list(r.instances) == ["source"] for r in records.values()),
            f"{name}: a record not settled as the host's own: {records}",
        )
        check(node.channel_empty(), f"{name}: the handover channel still holds {node.channel_files()}")
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
            if f"{node.name}/{vm}" in self.lost_ok:
                continue
            self.world.ledger.check(bool(qs), f"{node.name}: guest {vm} has no QEMU at all (lost)")
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


def _run_state(node: TwoHostNode, q: Qemu, l1: int | None) -> str | None:
    """The run state of QEMU ``q`` asked on its observer monitor (the second ``-qmp``); None if unknown."""
    spec = _arg(q, "-qmp", 1)
    if spec is None or l1 is None:
        return None
    path = node.layout.outside(spec.removeprefix("unix:").split(",")[0], l1)
    qmp = QEMUMonitorProtocol(str(path))
    try:
        qmp.connect()
        qmp.settimeout(1.0)
        reply = qmp.cmd_raw("query-status")
        return str((reply.get("return") or {}).get("status"))
    except Exception:  # busy, exiting or gone: unknown this look
        return None
    finally:
        with contextlib.suppress(Exception):
            qmp.close()


class AgentKiller:
    """SIGKILLs a host's agent once its node's refresh is seen running the step chosen for it; a kill
    counts as a fault only once it happened there, and a target never reached is reported."""

    def __init__(self, world: FaultWorld, targets: dict[str, tuple[tuple[str, int], TwoHostNode]]) -> None:
        self.world = world
        self.targets = targets
        self.killed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agent-killer", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            try:
                seen = {o["metadata"]["name"]: o for o in self.world.mine()}  # one list for every target
            except Exception:  # a failed look is retried; a target never reached is reported
                continue
            for name, (kill, node) in self.targets.items():
                if name in self.killed:
                    continue
                step, l1 = kill
                agent = ((seen.get(name) or {}).get("status") or {}).get("agent") or {}
                if agent.get("step") == step and agent.get("stepState") == "Running" and node.agent_pid(l1):
                    with contextlib.suppress(AssertionError, ProcessLookupError):
                        node.kill_agent(l1)
                        self.killed.add(name)
                        self.world.ledger.fault(f"agent-sigkill-{'old' if l1 == 1 else 'new'}-host", two_host=True)

    def missed(self) -> dict[str, str]:
        return {name: kill[0] for name, (kill, _) in self.targets.items() if name not in self.killed}

    def __enter__(self) -> AgentKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def two_host_l0_errors(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thl0", l0_error_cases(full), "l0-error")


def two_host_l0_queries(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thq", l0_query_cases(full), "l0-query-error")


def two_host_l0_chaos(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thc", chaos_cases(full), "l0-error")


def two_host_agent_kills(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thk", agent_kill_cases(full), "l0-error")  # (hold rules only: the kills are the faults)


def _under_way(world: FaultWorld, names: list[str]) -> bool:
    """Whether one of ``names`` is started and not over (a disruption after the end tests nothing)."""
    try:
        objs = [o for o in world.mine() if o["metadata"]["name"] in names]
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
    for _ in range(3):
        time.sleep(3.0)
        if _under_way(world, names):
            operator.kill()
            world.ledger.fault("operator-sigkill", two_host=True)


def _restart_control_plane(world: FaultWorld, names: list[str], operator: Process) -> None:
    """kube-apiserver and etcd crash and come back while the machines refresh: every refresh succeeds."""
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


def two_host_operator_kills(world: FaultWorld, full: bool) -> None:
    run_cases(world, "thok", _plain_cases("m", BATCH), "operator-sigkill", Batch(during=_kill_operator))


def two_host_control_plane(world: FaultWorld, full: bool) -> None:
    run_cases(
        world, "thcp", _plain_cases("m", BATCH), "api-restart", Batch(during=_restart_control_plane, api_outages=True)
    )
