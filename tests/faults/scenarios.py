"""The fault campaign's scenarios: each injects one class of fault at many points and checks every
refresh it touched against the invariants (see world.py). ``full`` widens each matrix; the bounded
set (``full=False``) runs in ``make test``, the whole campaign in ``make faults``."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hostrefresh.controlplane.nodes import set_node_ready
from hostrefresh.l0 import Call, FaultRule, Status
from hostrefresh.sim.sysfs import FakeRules, fired_rules
from tests.e2e.harness import Process, running, wait_for

from .qemu_scenario import qemu_kills
from .twohost_scenario import (
    two_host_agent_kills,
    two_host_clock_skew,
    two_host_control_plane,
    two_host_crash_points,
    two_host_images,
    two_host_l0_chaos,
    two_host_l0_errors,
    two_host_l0_queries,
    two_host_operator_kills,
    two_host_owner,
    two_host_qemu_deaths,
    two_host_recall_failures,
    two_host_silenced_agents,
    two_host_spec_edits,
    two_host_state_dir,
    two_host_sysfs,
)
from .world import TERMINAL, FaultWorld, faketime_env, unwritable_dir_script

ROLLED = frozenset({"Succeeded", "RolledBack"})
MEMORY = "devices/system/memory/memory{}/state"
CPU = "devices/system/cpu/cpu{}/online"


@dataclass(frozen=True)
class Scenario:
    name: str
    fault_class: str
    run: Callable[[FaultWorld, bool], None]


def _refresh_all(world: FaultWorld, timeout: float = 300.0) -> list[dict[str, Any]]:
    """A standalone refresh per node of the scenario; waits for all to end; checks every end state."""
    for node in world.nodes:
        world.refresh(f"{node}-hr", node)
    objs = world.wait_terminal([f"{n}-hr" for n in world.nodes], timeout=timeout)
    for obj in objs:
        world.check_end(obj)
    return objs


def _count_l0(world: FaultWorld) -> None:
    for node in world.nodes.values():
        world.ledger.fault("l0-error", node.disarm())


# -- L0 errors at every call ---------------------------------------------------------------------

FORWARD_CALLS = [Call.PARTITION_CREATE, Call.NESTED_ENABLE, Call.L1_BOOT, Call.MEM_GRANT, Call.L1_RETIRE]
ROLLBACK_CALLS = [Call.L1_STOP, Call.PARTITION_DESTROY, Call.NESTED_DISABLE]


def l0_errors(world: FaultWorld, full: bool) -> None:
    statuses = [Status.E_HW, Status.E_BUSY, *([Status.E_IO, Status.E_RESOURCE] if full else [])]
    cases: list[list[FaultRule]] = []
    for call in FORWARD_CALLS:  # before the point of no return: rolls back (or goes on, if retried)
        for status in statuses:
            for times in (1, 3):
                cases.append([FaultRule(call=call, status=status, times=times)])
    for status in statuses[: 2 if not full else None]:  # after it: retried until it goes through
        for times in (1, 3, 7):
            cases.append([FaultRule(call=Call.NESTED_DISABLE, status=status, times=times)])
    for call in ROLLBACK_CALLS:  # the rollback's own calls fail too
        for times in (1, 3) if not full else (1, 2, 4):
            cases.append(
                [
                    FaultRule(call=Call.MEM_GRANT, status=Status.E_HW, times=1),
                    FaultRule(call=call, status=Status.E_BUSY, times=times),
                ]
            )
    for i, rules in enumerate(cases):
        world.node(f"l0e-{i:02d}", rules=rules, admin_offline=i % 2 == 1)
    with world.monitor(), running(world.operator(), world.agent(list(world.nodes))):
        _refresh_all(world)
    _count_l0(world)


def l0_queries(world: FaultWorld, full: bool) -> None:
    """The L0 query fails at its n-th call: in every step's observation, before and after the retire."""
    # a refresh asks the L0 some 10-20 times: every one of those calls, once and repeatedly
    cases = [(nth, times) for times in ((1, 4) if full else (1,)) for nth in range(24 if full else 16)]
    for i, (nth, times) in enumerate(cases):
        world.node(f"l0q-{i:02d}", rules=[FaultRule(call=Call.QUERY, status=Status.E_IO, nth=nth, times=times)])
    with world.monitor(), running(world.operator(), world.agent(list(world.nodes))):
        _refresh_all(world)
    _count_l0(world)


def l0_chaos(world: FaultWorld, full: bool) -> None:
    """Any call may fail, with some probability, a few times: seeded, so a failing node can be rerun."""
    rng = random.Random(12)
    for i in range(60 if full else 12):
        status = rng.choice([Status.E_HW, Status.E_BUSY, Status.E_IO, Status.E_RESOURCE])
        rule = FaultRule(call=None, status=status, nth=rng.randrange(0, 6), times=rng.randrange(1, 5), probability=0.35)
        world.node(f"l0c-{i:02d}", rules=[rule], admin_offline=i % 3 == 0)
    with world.monitor(), running(world.operator(), world.agent(list(world.nodes))):
        _refresh_all(world)
    _count_l0(world)


# -- the kernel's sysfs ----------------------------------------------------------------------------


def sysfs_faults(world: FaultWorld, full: bool) -> None:
    """Hot-unplug refused, busy, hung or completing late (the partitioner tries cpu7 and memory31 first)."""
    late = FakeRules(late=[MEMORY.format(31)], hang_seconds=2.5)
    cases: list[tuple[FakeRules, list[FaultRule], int]] = [
        (FakeRules(ebusy=[MEMORY.format(31), MEMORY.format(30)]), [], 2),
        (FakeRules(refuse=[CPU.format(7)]), [], 1),
        (FakeRules(hang=[MEMORY.format(31)], hang_seconds=2.5), [], 1),
        (late, [], 1),  # the partition goes on without it; the devirtualize waits for it and hands it back
        (late, [FaultRule(call=Call.L1_BOOT, status=Status.E_HW, times=1)], 1),  # ... and so does a rollback
    ]
    if full:
        cases += [
            (FakeRules(ebusy=[MEMORY.format(b) for b in range(31, 20, -1)]), [], 11),  # too few blocks: rollback
            (FakeRules(refuse=[CPU.format(7), CPU.format(5)], late=[MEMORY.format(30)], hang_seconds=2.0), [], 3),
        ]
    for i, (rules, l0_rules, _least) in enumerate(cases):
        world.node(f"sys-{i:02d}", sysfs=rules, rules=l0_rules, sysfs_timeout_s=1.0, admin_offline=i % 2 == 0)
    with world.monitor(), running(world.operator(), world.agent(list(world.nodes))):
        _refresh_all(world)
    for i, (_, _, least) in enumerate(cases):  # each counted as the fake kernel applied it, never from this table
        fired = fired_rules(world.nodes[f"sys-{i:02d}"].dir / "sysfs")
        world.ledger.check(len(fired) >= least, f"sys-{i:02d}: {len(fired)} sysfs faults fired, {least} expected")
        world.ledger.fault("sysfs", len(fired))
    _count_l0(world)


# -- crashes -------------------------------------------------------------------------------------

# The step to interrupt and the slow L0 call (or sysfs write) that keeps the agent in it. Verifying is
# not among them: it makes no call that can be held, and a kill aimed at it lands after it as often as
# in it (a target never reached fails the scenario).
KILL_POINTS: list[tuple[str, list[FaultRule], FakeRules | None]] = [
    ("Preflight", [FaultRule(call=Call.PROBE, status=Status.OK, latency_s=1.5, times=1)], None),
    ("Partitioning", [FaultRule(call=Call.PARTITION_CREATE, status=Status.OK, latency_s=1.5, times=1)], None),
    ("Partitioning", [], FakeRules(late=[MEMORY.format(31)], hang_seconds=2.0)),  # in a sysfs write
    ("NestedEnabling", [FaultRule(call=Call.NESTED_ENABLE, status=Status.OK, latency_s=1.5, times=1)], None),
    ("BootingTarget", [FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=1.5, times=1)], None),
    ("Migrating", [FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=1.5, times=1)], None),
    ("Retiring", [FaultRule(call=Call.L1_RETIRE, status=Status.OK, latency_s=1.5, times=1)], None),
    ("Devirtualizing", [FaultRule(call=Call.NESTED_DISABLE, status=Status.OK, latency_s=1.5, times=1)], None),
    (
        "RollingBack",
        [
            FaultRule(call=Call.MEM_GRANT, status=Status.E_HW, times=1),
            FaultRule(call=Call.PARTITION_DESTROY, status=Status.OK, latency_s=1.5, times=1),
        ],
        None,
    ),
]


class Killer:
    """SIGKILLs the agent process when a node's refresh is seen in its chosen step, then restarts it."""

    def __init__(self, world: FaultWorld, targets: dict[str, str], make: Callable[[int], Process]) -> None:
        self.world, self.targets, self.make = world, targets, make
        self.generation = 0
        self.agent = make(0)
        self.killed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                seen = self.world.mine()
            except Exception:  # a moment's 429 or 5xx (a control plane just started): look again
                time.sleep(0.05)
                continue
            for obj in seen:
                node = obj["spec"]["nodeName"]
                agent = (obj.get("status") or {}).get("agent") or {}
                step = self.targets.get(node)
                if node in self.killed or step is None:
                    continue
                if agent.get("step") == step and agent.get("stepState") == "Running":
                    self.agent.kill()
                    self.killed.add(node)
                    self.world.ledger.fault("agent-sigkill")
                    self.generation += 1
                    self.agent = self.make(self.generation).start()
            time.sleep(0.05)

    def __enter__(self) -> Killer:
        self.agent.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.agent.stop()


def agent_kills(world: FaultWorld, full: bool) -> None:
    targets: dict[str, str] = {}
    rounds = 2 if full else 1
    for r in range(rounds):
        for i, (step, rules, sysfs) in enumerate(KILL_POINTS):
            node = f"kill-{r}-{i:02d}"
            world.node(node, rules=rules, sysfs=sysfs, admin_offline=(i + r) % 2 == 0)
            targets[node] = step
    nodes = list(world.nodes)

    def make(gen: int) -> Process:
        return world.agent(nodes, f"agent-{gen}", "--report-running-after=0")

    with world.monitor(), running(world.operator()), Killer(world, targets, make) as killer:
        _refresh_all(world)
    for node, step in sorted(targets.items()):
        world.ledger.check(node in killer.killed, f"{node}: the agent kill aimed at {step} never happened")
    _count_l0(world)


def state_dir_faults(world: FaultWorld, full: bool) -> None:
    """The agent's node-local state directory read-only, or full, when the refresh starts.

    The agent runs in a mount namespace of its own in which each node's state directory is a
    read-only bind mount, or a tmpfs filled to the last byte: it cannot record what was offline
    before the refresh, so it must take nothing and roll back, leaving the node as it was.
    """
    readonly = [world.node(f"state-ro-{i}", admin_offline=i == 0).name for i in range(2)]
    full_dirs = [world.node(f"state-full-{i}", admin_offline=i == 1).name for i in range(2)]
    script = []
    for node in readonly:
        d = world.root / node / "agent"
        d.mkdir(parents=True, exist_ok=True)
        script.append(unwritable_dir_script(d, "read-only"))
    for node in full_dirs:
        d = world.root / node / "agent"
        d.mkdir(parents=True, exist_ok=True)
        script.append(unwritable_dir_script(d, "full"))
    agent = world.agent([*readonly, *full_dirs], "agent-confined")
    script.append('exec "$@"')
    agent.argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        " && ".join(script),
        "agent",
        *agent.argv,
    ]
    with world.monitor(), running(world.operator(), agent):
        objs = _refresh_all(world)
    for obj in objs:
        node, status = obj["spec"]["nodeName"], obj["status"]
        degraded: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
        reason = "StateNotWritable" if "(StateNotWritable)" in degraded.get("message", "") else degraded.get("reason")
        # The fault counts when the agent met it: it says it could not write its record.
        if world.ledger.check(
            status["phase"] == "RolledBack" and reason == "StateNotWritable",
            f"{obj['metadata']['name']}: ended {status['phase']} ({reason}) though it could record nothing",
        ):
            world.ledger.fault("state-dir-read-only" if node in readonly else "state-dir-full")


def _leader(world: FaultWorld) -> str | None:
    lease = world.cluster.get("lease", "hostrefresh-operator", namespace="hostrefresh-system") or {}
    holder = (lease.get("spec") or {}).get("holderIdentity")
    return str(holder) if holder else None


def _plan_done(world: FaultWorld, nodes: int, timeout: float = 300.0) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        objs = world.mine()
        if len(objs) >= nodes and all((o.get("status") or {}).get("phase") in TERMINAL for o in objs):
            return objs
        return None

    result: list[dict[str, Any]] = wait_for(done, timeout, interval=0.5, what="every node of the plan refreshed")
    return result


def _fleet(world: FaultWorld, prefix: str, n: int) -> None:
    for i in range(n):
        world.node(
            f"{prefix}-{i:02d}",
            rules=[FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=1.0, times=1)],  # refreshes overlap
            labels={"fleet": prefix},
            admin_offline=i % 2 == 0,
        )


def operator_kills(world: FaultWorld, full: bool) -> None:
    """The leading operator SIGKILLed mid-plan (again and again), then both replicas down for a while."""
    _fleet(world, "opk", 8 if full else 6)
    a = world.operator("replica-a", "--lease-seconds=3")
    b = world.operator("replica-b", "--lease-seconds=3")
    replicas = {"replica-a": a, "replica-b": b}
    with world.monitor({"opk": 2}), running(a, b, world.agent(list(world.nodes))):
        wait_for(lambda: _leader(world) in replicas, timeout=30, what="a leader")
        world.plan("opk", {"fleet": "opk"}, maxUnavailable=2, canary=1)
        for _ in range(4 if full else 3):
            time.sleep(2.5)
            leader = _leader(world)
            if leader in replicas:
                replicas[leader].kill()
                world.ledger.fault("operator-sigkill")
                time.sleep(0.5)
                replicas[leader].start()
        time.sleep(1.0)
        a.kill()
        b.kill()
        world.ledger.fault("operators-all-down")
        time.sleep(6.0)
        a.start()
        b.start()
        for obj in _plan_done(world, len(world.nodes)):
            world.check_end(obj)


def control_plane_restarts(world: FaultWorld, full: bool) -> None:
    """kube-apiserver and etcd crash and come back mid-rollout: the API server's outage is the agents'
    and the operator's link's condition, never a step's failure, so every node ends Succeeded."""
    _fleet(world, "cpr", 6)
    with (
        world.monitor({"cpr": 2}, api_outages=True),
        world.supervised(world.operator(), world.agent(list(world.nodes))),
    ):
        world.plan("cpr", {"fleet": "cpr"}, maxUnavailable=2, canary=0)
        # Short outages close together: a request in flight when the server dies (RemoteProtocolError),
        # and a report whose failure would reach the API server once it is back, both happen.
        outages = [("kube-apiserver", 2.0), ("etcd", 2.0), ("kube-apiserver", 0.0), ("kube-apiserver", 1.0)]
        for component, down in outages * (2 if full else 1):
            time.sleep(2.0)
            world.cp.crash_restart(component, down_seconds=down)
            world.ledger.fault(f"{component}-restart")
        for obj in _plan_done(world, len(world.nodes)):
            world.check_end(obj, allowed=frozenset({"Succeeded"}))


def clock_skew(world: FaultWorld, full: bool) -> None:
    """The agents' clocks 30 s ahead of and behind the operator's (real libfaketime in the agent process)."""
    ahead = [world.node(f"skew-a-{i}").name for i in range(3)]
    behind = [world.node(f"skew-b-{i}", admin_offline=True).name for i in range(3)]
    agents = [
        world.agent(ahead, "agent-ahead", env=faketime_env("+30s")),
        world.agent(behind, "agent-behind", env=faketime_env("-30s")),
    ]
    with world.monitor(), running(world.operator(), *agents):
        for node in world.nodes:
            world.refresh(f"{node}-hr", node)
        # The fault counts once the agent's own clock is seen off: its Lease renewals carry its time.
        for offset, nodes in (("+30s", ahead), ("-30s", behind)):
            for node in nodes:
                world.check_clock(node, offset)
        # An agent's clock tells the operator nothing it relies on: every refresh goes through.
        for obj in world.wait_terminal([f"{n}-hr" for n in world.nodes]):
            world.check_end(obj, allowed=frozenset({"Succeeded"}))


def _when_in(world: FaultWorld, name: str, step: str, timeout: float = 60.0) -> None:
    wait_for(lambda: world.step_of(name)[0] == step, timeout, interval=0.05, what=f"{name} in {step}")


def node_faults(world: FaultWorld, full: bool) -> None:
    """The Node goes NotReady mid-refresh, or is deleted mid-refresh (the machine keeps running)."""
    slow = [FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=2.0, times=1)]
    world.node("nodef-notready", rules=slow)
    world.node("nodef-deleted", rules=slow, admin_offline=True)
    with world.monitor(), running(world.operator(), world.agent(list(world.nodes))):
        world.refresh("nodef-notready-hr", "nodef-notready")
        world.refresh("nodef-deleted-hr", "nodef-deleted")
        _when_in(world, "nodef-notready-hr", "BootingTarget")
        set_node_ready(world.cp, "nodef-notready", False)
        world.ledger.fault("node-notready")
        _when_in(world, "nodef-deleted-hr", "BootingTarget")
        world.cp.kubectl("delete", "node", "nodef-deleted")
        world.ledger.fault("node-deleted")
        time.sleep(3.0)
        set_node_ready(world.cp, "nodef-notready", True)
        objs = world.wait_terminal(["nodef-notready-hr", "nodef-deleted-hr"])
        world.cluster.add_node("nodef-deleted")  # back (as after a re-registration) to check its marks
        for obj in objs:
            world.check_end(obj)


def overlapping(world: FaultWorld, full: bool) -> None:
    """Two plans select the same nodes, and a standalone refresh names one of them too."""
    _fleet(world, "ovl", 4)
    with world.monitor(), running(world.operator(), world.agent(list(world.nodes))):
        world.plan("ovl-one", {"fleet": "ovl"}, maxUnavailable=2, canary=0)
        world.plan("ovl-two", {"fleet": "ovl"}, maxUnavailable=2, canary=0)
        world.refresh("ovl-alone", "ovl-01")
        world.ledger.fault("overlapping-plans")
        world.ledger.fault("standalone-and-plan")
        objs = _plan_done(world, 2 * len(world.nodes) + 1)
    last: dict[str, dict[str, Any]] = {}
    for obj in sorted(objs, key=lambda o: (o.get("status") or {}).get("completedAt") or ""):
        last[obj["spec"]["nodeName"]] = obj
    for obj in objs:
        phase = (obj.get("status") or {}).get("phase")
        world.ledger.check(phase in ROLLED, f"{obj['metadata']['name']}: ended {phase}")
    for obj in last.values():
        world.check_end(obj)


def overlapping_targets(world: FaultWorld, full: bool) -> None:
    """Two plans select the same nodes with different targets, and a standalone refresh runs on one of
    them first: the older plan takes every node, the newer one refuses them and says which plan holds
    them, and the pool is never more unavailable than maxUnavailable, whoever started each refresh."""
    _fleet(world, "ovt", 4)
    pool = set(world.nodes)
    with world.monitor(pool=(pool, 1)), running(world.operator(), world.agent(list(world.nodes))):
        world.refresh("ovt-alone", "ovt-03")
        wait_for(lambda: world.step_of("ovt-alone")[0] is not None, timeout=60, what="ovt-alone under way")
        world.plan("ovt-old", {"fleet": "ovt"}, maxUnavailable=1, canary=0)
        time.sleep(1.1)  # creation timestamps have whole seconds: "older" must be unambiguous
        world.plan("ovt-new", {"fleet": "ovt"}, maxUnavailable=1, canary=0, target=world.cluster.target_image("3.0"))
        objs = _plan_done(world, len(world.nodes) + 1)

        def refused() -> dict[str, Any] | None:
            status = (world.cluster.get("refreshplan", "ovt-new") or {}).get("status") or {}
            degraded: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
            return degraded if degraded.get("reason") == "OverlappingPlan" else None

        degraded = wait_for(refused, timeout=30, what="ovt-new saying the nodes are ovt-old's")
        world.ledger.fault("overlapping-plans-different-targets")
        world.ledger.check("RefreshPlan ovt-old" in degraded["message"], f"ovt-new: {degraded}")
    world.ledger.check(
        all((o["metadata"].get("labels") or {}).get("hostrefresh.io/plan") != "ovt-new" for o in objs),
        f"ovt-new started refreshes of nodes ovt-old holds: {[o['metadata']['name'] for o in objs]}",
    )
    last: dict[str, dict[str, Any]] = {}
    for obj in sorted(objs, key=lambda o: (o.get("status") or {}).get("completedAt") or ""):
        last[obj["spec"]["nodeName"]] = obj
    for obj in objs:
        world.ledger.check(obj["spec"]["target"]["version"] == "2.0", f"{obj['metadata']['name']}: target 3.0")
    for obj in last.values():
        world.check_end(obj, allowed=frozenset({"Succeeded"}))


def spec_edits(world: FaultWorld, full: bool) -> None:
    """Edits of what the agent acts on, mid-refresh: the API server refuses each, the refresh carries on."""
    nodes = [
        world.node(f"edit-{i}", rules=[FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=2.0, times=1)]).name
        for i in range(2)
    ]
    with world.monitor(), running(world.operator(), world.agent(nodes)):
        for node in nodes:
            world.refresh(f"{node}-hr", node)
        for node in nodes:
            _when_in(world, f"{node}-hr", "Migrating")
            world.edit_refused(f"{node}-hr")
        objs = world.wait_terminal([f"{n}-hr" for n in nodes])
    for obj in objs:
        world.check_end(obj)
        world.ledger.check(obj["spec"]["target"]["version"] == "2.0", f"{obj['metadata']['name']}: spec changed")


def forgeries(world: FaultWorld, full: bool) -> None:
    """Leases that are not the node agent's own, and a report stamped an hour ahead while the agent is dead."""
    lonely = world.node("forge-lease").name
    silent = world.node(
        "forge-report", rules=[FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=3.0, times=1)]
    ).name
    world.ledger.fault("forged-lease", world.forge_leases(lonely))
    with world.monitor(), running(world.operator()):
        world.refresh(f"{lonely}-hr", lonely)
        time.sleep(6.0)
        obj = world.cluster.get("hostrefresh", f"{lonely}-hr") or {}
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        world.ledger.check(
            (obj.get("status") or {}).get("directive") != "Proceed"
            and (conds.get("Progressing") or {}).get("reason") == "AgentNotAlive",
            f"{lonely}-hr: started on a forged Lease: {obj.get('status')}",
        )
        first = world.agent([lonely, silent], "agent-first")
        with running(first):
            world.refresh(f"{silent}-hr", silent)
            _when_in(world, f"{silent}-hr", "Migrating")
            first.kill()
            world.ledger.fault("agent-sigkill")
            stamp = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            patch = {"status": {"agent": {"updatedAt": stamp}}}
            world.cp.kubectl(
                "patch", "hostrefresh", f"{silent}-hr", "--subresource=status", "--type=merge", "-p", json.dumps(patch)
            )
            world.ledger.fault("report-stamped-ahead")
            wait_for(
                lambda: (
                    (world.cluster.get("hostrefresh", f"{silent}-hr") or {}).get("status", {}).get("directive")
                    == "RollBack"
                ),
                timeout=60,
                what="the operator to see through the stamp and roll back",
            )
        with running(world.agent([lonely, silent], "agent-second")):
            objs = world.wait_terminal([f"{lonely}-hr", f"{silent}-hr"])
    for obj in objs:
        world.check_end(obj)
    world.ledger.check(
        next(o for o in objs if o["metadata"]["name"] == f"{silent}-hr")["status"]["phase"] == "RolledBack",
        f"{silent}-hr: did not roll back after its agent went silent",
    )


SCENARIOS = [
    Scenario("l0-errors", "l0", l0_errors),
    Scenario("l0-queries", "l0", l0_queries),
    Scenario("l0-chaos", "l0", l0_chaos),
    Scenario("sysfs", "sysfs", sysfs_faults),
    Scenario("agent-kills", "crash", agent_kills),
    Scenario("operator-kills", "crash", operator_kills),
    Scenario("control-plane-restarts", "control-plane", control_plane_restarts),
    Scenario("clock-skew", "clock", clock_skew),
    Scenario("node-faults", "node", node_faults),
    Scenario("overlapping-refreshes", "concurrency", overlapping),
    Scenario("overlapping-targets", "concurrency", overlapping_targets),
    Scenario("spec-edits", "input", spec_edits),
    Scenario("forgeries", "identity", forgeries),
    Scenario("state-dir", "disk", state_dir_faults),
    Scenario("qemu-kills", "qemu", qemu_kills),
    Scenario("two-host-l0-errors", "l0", two_host_l0_errors),
    Scenario("two-host-l0-queries", "l0", two_host_l0_queries),
    Scenario("two-host-agent-kills", "crash", two_host_agent_kills),
    Scenario("two-host-qemu-deaths", "qemu", two_host_qemu_deaths),
]
#: Scenarios of the whole campaign only (make faults): the bounded matrix in make test has no room.
WHOLE_ONLY = [
    Scenario("two-host-l0-chaos", "l0", two_host_l0_chaos),
    Scenario("two-host-operator-kills", "crash", two_host_operator_kills),
    Scenario("two-host-control-plane-restarts", "control-plane", two_host_control_plane),
    Scenario("two-host-owner-pauses", "owner", two_host_owner),
    Scenario("two-host-sysfs", "sysfs", two_host_sysfs),
    Scenario("two-host-silenced-agents", "crash", two_host_silenced_agents),
    Scenario("two-host-spec-edits", "input", two_host_spec_edits),
    Scenario("two-host-target-images", "image", two_host_images),
    Scenario("two-host-crash-points", "crash", two_host_crash_points),
    Scenario("two-host-recall-failures", "qemu", two_host_recall_failures),
    Scenario("two-host-clock-skew", "clock", two_host_clock_skew),
    Scenario("two-host-state-dir", "disk", two_host_state_dir),
]
