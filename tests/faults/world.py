"""The world a fault scenario runs in: simulated nodes on a real control plane, the real operator and
agent processes, a monitor that checks invariants continuously, and the checks of every end state."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lightkube import ApiError

from hostrefresh.api.names import NODE_RECORD_KEYS
from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.names import DEFAULT_NAMESPACE, agent_lease_name
from hostrefresh.kube.resources import HostRefreshResource
from hostrefresh.l0 import FaultRule, open_l0
from hostrefresh.nodeagent.migrate import VmLocation
from hostrefresh.nodeagent.partitioner import Partitioner
from hostrefresh.sim.migrator import SimMigrator, SimVm
from hostrefresh.sim.node import SimNodeSpec, create_sim_node
from hostrefresh.sim.sysfs import FakeRules, FakeSysfsIO, save_rules
from tests.e2e.harness import Cluster, Process, agent_process, operator_process, wait_for

from .ledger import Ledger

TERMINAL = {"Succeeded", "RolledBack", "Failed"}
#: Edits of what the agent acts on; mid-refresh, the API server refuses each.
SPEC_EDITS = [
    {"spec": {"target": {"version": "9.9"}}},
    {"spec": {"partition": {"cpus": 4, "memory": "2Gi"}}},
    {"spec": {"handover": {"maxParallel": 1, "zeroCopy": False}}},
]


def unwritable_dir_script(d: Path, how: str) -> str:
    """Shell that makes directory ``d`` unwritable in the calling mount namespace: a read-only bind
    mount ("read-only"), or a 16 KiB tmpfs filled to the last byte ("full")."""
    if how == "read-only":
        return f"mount --bind {d} {d} && mount -o remount,bind,ro {d}"
    return f"mount -t tmpfs -o size=16k tmpfs {d} && (dd if=/dev/zero of={d}/filler bs=4k 2>/dev/null; true)"


def faketime_env(offset: str) -> dict[str, str]:
    """The environment that sets a process's wall clock ``offset`` ("+30s") off (real libfaketime; the
    monotonic clock stays true, as a node's skewed wall clock leaves its timers alone)."""
    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert libs, "libfaketime is missing: scripts/install-system-deps.sh installs the Debian package faketime"
    return {"LD_PRELOAD": libs[0], "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


#: Failed lists in a row (0.3 s apart) after which the invariant monitor counts itself blind.
MONITOR_BLIND_LOOKS = 20
#: CPUs and a memory block an administrator took offline before the refresh, on some nodes.
ADMIN_CPU, ADMIN_BLOCK = 6, 3


@dataclass
class SimNode:
    """A simulated node of a scenario, and how it looked before the refresh."""

    name: str
    root: Path
    vms: int
    offline_cpus: list[int] = field(default_factory=list)
    offline_blocks: list[int] = field(default_factory=list)
    taints: list[dict[str, Any]] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    rules: list[FaultRule] = field(default_factory=list)
    fired: int | None = None

    @property
    def dir(self) -> Path:
        return self.root / self.name

    def disarm(self) -> int:
        """Remove the node's fault rules (the checks query the L0 too); returns how many faults fired
        (latency-only rules do not count). Idempotent: the count is kept."""
        if self.fired is None:
            with open_l0("sim", self.dir / "l0.state") as l0:
                self.fired = sum(r.fired for r in l0.sim_faults() if r.status != 0)
                l0.sim_clear_faults()
        return self.fired


class FaultWorld:
    """Nodes, processes and checks for one scenario."""

    def __init__(self, cp: ControlPlane, workdir: Path, ledger: Ledger) -> None:
        self.cp = cp
        self.workdir = workdir
        self.cluster = Cluster(cp, workdir)
        self.root = workdir / "nodes"
        self.ledger = ledger
        self.nodes: dict[str, SimNode] = {}
        self.watched: set[str] = set()  # nodes of other kinds (two-host machines) this scenario owns
        self.client = sync_client(cp.kubeconfig)

    def watch(self, node: str) -> None:
        """Count ``node`` (a machine, not a simulated node) among this scenario's nodes."""
        self.watched.add(node)

    def owns(self, node: str) -> bool:
        return node in self.nodes or node in self.watched

    # -- nodes ---------------------------------------------------------------------------------

    def node(
        self,
        name: str,
        *,
        rules: list[FaultRule] | tuple[FaultRule, ...] = (),
        sysfs: FakeRules | None = None,
        admin_offline: bool = False,
        vms: int = 3,
        sysfs_timeout_s: float = 5.0,
        labels: dict[str, str] | None = None,
    ) -> SimNode:
        spec = SimNodeSpec(cpus=8, memory_blocks=32, sim_vms=vms, sysfs_timeout_s=sysfs_timeout_s)
        create_sim_node(self.root, name, spec)
        io = FakeSysfsIO(self.root / name / "sysfs")
        if admin_offline:
            io.write(f"devices/system/cpu/cpu{ADMIN_CPU}/online", "0")
            io.write(f"devices/system/memory/memory{ADMIN_BLOCK}/state", "offline")
        if sysfs is not None:
            save_rules(self.root / name / "sysfs", sysfs)
        with open_l0("sim", self.root / name / "l0.state") as l0:
            for rule in rules:
                l0.sim_inject_fault(rule)
        self.cluster.add_node(name, labels)
        offline = Partitioner(io).observe(zones=False)
        obj = self.cluster.get("node", name) or {}
        node = SimNode(
            name,
            self.root,
            vms,
            offline_cpus=offline.offline_cpus(),
            offline_blocks=offline.offline_blocks(),
            taints=list((obj.get("spec") or {}).get("taints") or []),
            annotations=dict((obj.get("metadata") or {}).get("annotations") or {}),
            rules=list(rules),
        )
        self.nodes[name] = node
        return node

    # -- processes -----------------------------------------------------------------------------

    def operator(self, name: str = "operator", *extra: str) -> Process:
        return operator_process(self.cp, self.workdir, name, "--max-starts-per-second=50", *extra)

    def agent(self, nodes: list[str], name: str = "agent", *extra: str, env: dict[str, str] | None = None) -> Process:
        proc = agent_process(self.cp, self.workdir, nodes, "--retry-seconds=0.5", *extra, name=name)
        proc.env.update(env or {})
        return proc

    @contextmanager
    def supervised(self, *procs: Process) -> Iterator[None]:
        """Start ``procs`` and start each again whenever it exits, as a kubelet does (restartPolicy
        Always): an operator that gives up its leadership during an outage exits to rejoin the election."""

        def restart_exited() -> None:
            for proc in procs:
                if proc.proc is not None and proc.proc.poll() is not None:
                    proc.start()

        for proc in procs:
            proc.start()
        try:
            with _every(0.5, restart_exited, "supervisor"):
                yield
        finally:
            for proc in procs:
                proc.stop()

    # -- objects -------------------------------------------------------------------------------

    def refresh(self, name: str, node: str, **spec: Any) -> None:
        spec.setdefault("timeouts", {"agentSilenceSeconds": 20})
        self.cluster.host_refresh(name, node, **spec)

    def plan(self, name: str, selector: dict[str, str], **spec: Any) -> None:
        template = spec.pop("template", {})
        self.cluster.apply(
            {
                "apiVersion": "hostrefresh.io/v1alpha1",
                "kind": "RefreshPlan",
                "metadata": {"name": name},
                "spec": {
                    "nodeSelector": {"matchLabels": selector},
                    "target": self.cluster.target_image("2.0"),
                    "template": {
                        "partition": {"cpus": 2, "memory": "1Gi"},
                        "timeouts": {"agentSilenceSeconds": 20},
                        **template,
                    },
                    "soakSeconds": 0,
                    **spec,
                },
            }
        )

    def refreshes(self) -> list[dict[str, Any]]:
        return [o.to_dict() for o in self.client.list(HostRefreshResource)]  # type: ignore[no-untyped-call]

    def named(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The HostRefresh objects of these names that exist, each asked for by name: a poll that must
        see a step while it runs cannot list every object a long campaign made before it."""
        found = {}
        for name in names:
            try:
                found[name] = self.client.get(HostRefreshResource, name=name).to_dict()  # type: ignore[no-untyped-call]
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        return found

    def mine(self) -> list[dict[str, Any]]:
        """The HostRefresh objects of this scenario's nodes."""
        return [o for o in self.refreshes() if self.owns(o["spec"]["nodeName"])]

    def wait_terminal(self, names: list[str] | None = None, timeout: float = 240.0) -> list[dict[str, Any]]:
        def done() -> list[dict[str, Any]] | None:
            objs = list(self.named(names).values()) if names is not None else self.mine()
            if names is not None and len(objs) < len(names):
                return None
            if objs and all((o.get("status") or {}).get("phase") in TERMINAL for o in objs):
                return objs
            return None

        result: list[dict[str, Any]] = wait_for(done, timeout, interval=0.5, what="every refresh terminal")
        return result

    def step_of(self, name: str) -> tuple[str | None, str | None]:
        obj = self.cluster.get("hostrefresh", name) or {}
        agent = (obj.get("status") or {}).get("agent") or {}
        return agent.get("step"), agent.get("stepState")

    # -- invariants ----------------------------------------------------------------------------

    @contextmanager
    def monitor(
        self,
        plans: dict[str, int] | None = None,
        *,
        api_outages: bool = False,
        pool: tuple[set[str], int] | None = None,
    ) -> Iterator[None]:
        """Check, continuously while the scenario runs, what may be broken only in passing:
        never two granted refreshes of one node; never more of a plan's nodes in progress than allowed.

        A monitor that cannot look checks nothing: lists failing for ``MONITOR_BLIND_LOOKS`` looks in a
        row (a moment's 429 or 5xx is the API server's to give) are a violation, unless the scenario
        takes the API server down on purpose (``api_outages``); a monitor that stopped, or never got a
        look, fails the scenario too. ``pool``: nodes of which no more than a number may be under way at
        once, whoever started their refreshes."""
        client = sync_client(self.cp.kubeconfig)
        looks = {"ok": 0, "failed": 0, "in_a_row": 0}

        def look() -> None:
            try:
                objs = [o.to_dict() for o in client.list(HostRefreshResource)]  # type: ignore[no-untyped-call]
            except Exception as exc:
                looks["failed"] += 1
                looks["in_a_row"] += 1
                if not api_outages and looks["in_a_row"] == MONITOR_BLIND_LOOKS:
                    self.ledger.check(False, f"the invariant monitor could not list HostRefreshes: {exc!r}")
                return
            looks["ok"] += 1
            looks["in_a_row"] = 0
            granted: dict[str, list[str]] = defaultdict(list)
            per_plan: dict[str, int] = defaultdict(int)
            for o in objs:
                status = o.get("status") or {}
                if not self.owns(o["spec"]["nodeName"]):
                    continue
                if status.get("directive") in ("Proceed", "RollBack") and status.get("phase") not in TERMINAL:
                    granted[o["spec"]["nodeName"]].append(o["metadata"]["name"])
                    plan = (o["metadata"].get("labels") or {}).get("hostrefresh.io/plan")
                    if plan:
                        per_plan[plan] += 1
            for node, names in granted.items():
                self.ledger.check(len(names) <= 1, f"node {node} has two refreshes granted at once: {names}")
            if pool is not None:
                down = sorted(n for n in granted if n in pool[0])
                self.ledger.check(len(down) <= pool[1], f"{len(down)} nodes of the pool under way at once: {down}")
            for plan, limit in (plans or {}).items():
                n = per_plan.get(plan, 0)
                self.ledger.check(n <= limit, f"plan {plan} has {n} nodes in progress (maxUnavailable {limit})")

        with _every(0.3, look, "invariant-monitor") as alive:
            yield
            self.ledger.check(alive(), "the invariant monitor stopped (its thread died)")
        self.ledger.check(looks["ok"] > 0, f"the invariant monitor never got a look ({looks['failed']} failed)")

    def check_end(self, obj: dict[str, Any], allowed: frozenset[str] = frozenset({"Succeeded", "RolledBack"})) -> None:
        """Every invariant of a finished refresh, on the node and in the API."""
        name = obj["metadata"]["name"]
        node = self.nodes[obj["spec"]["nodeName"]]
        status = obj.get("status") or {}
        phase = status.get("phase")
        check = self.ledger.check
        self.ledger.outcome(str(phase))
        check(phase in allowed, f"{name}: ended {phase} (allowed {sorted(allowed)}): {_why(status)}")
        self.check_degraded(name, status)
        self._check_node(name, node, phase)

    def why(self, status: dict[str, Any]) -> str:
        return _why(status)

    def edit_refused(self, name: str, *, two_host: bool = False) -> None:
        """Edits of what the agent acts on, made mid-refresh: each must be refused by the API server (a
        fault only once it reached the API server and was refused there)."""
        for edit in SPEC_EDITS:
            out = self.cp.kubectl("patch", "hostrefresh", name, "--type=merge", "-p", json.dumps(edit), check=False)
            if self.ledger.check(
                out.returncode != 0 and "cannot change while the refresh runs" in out.stderr,
                f"{name}: a spec edit mid-refresh was not refused: {out.stdout} {out.stderr}",
            ):
                self.ledger.fault("spec-edit", two_host=two_host)

    def forge_leases(self, node: str) -> int:
        """Leases that claim to be ``node``'s agent, renewed now and valid for an hour, that are not its
        own: its Lease's name in another namespace, another name in the agents' namespace. Returns how
        many were written."""
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        forged = [("default", agent_lease_name(node)), (DEFAULT_NAMESPACE, f"forged-{node}")]
        for namespace, name in forged:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/component": "agent", "hostrefresh.io/node": node},
                },
                "spec": {"holderIdentity": "forger", "leaseDurationSeconds": 3600, "renewTime": renew},
            }
            self.cluster.apply(lease)
        return len(forged)

    def check_clock(self, node: str, offset: str, *, two_host: bool = False) -> None:
        """The fault counts once the agent's own clock is seen ``offset`` ("+30s") off: its Lease's
        renewTime (its clock) against this clock, sampled right after a renewal seen on the API server."""
        name = agent_lease_name(node)

        def renew_time() -> str | None:
            lease = self.cluster.get("lease", name, DEFAULT_NAMESPACE) or {}
            return (lease.get("spec") or {}).get("renewTime")

        seconds = float(offset.removesuffix("s"))
        first = wait_for(renew_time, timeout=30, interval=0.1, what=f"{node}: the agent's Lease")
        seen: float | None = None
        with contextlib.suppress(AssertionError):
            stamp = wait_for(lambda: (t := renew_time()) != first and t, timeout=30, interval=0.05)
            when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            seen = (when - datetime.now(UTC)).total_seconds()
        if self.ledger.check(
            seen is not None and abs(seen - seconds) <= abs(seconds) / 2,
            f"{node}: the agent's clock is {seen} s off, not {seconds} s: faketime did not take",
        ):
            self.ledger.fault(f"clock-{'ahead' if seconds > 0 else 'behind'}-{abs(seconds):.0f}s", two_host=two_host)

    def check_degraded(self, name: str, status: dict[str, Any]) -> None:
        """A refresh that did not succeed says why (Degraded with a reason) and warns (an Event)."""
        phase = status.get("phase")
        if phase in ("RolledBack", "Failed"):
            conds = {c["type"]: c for c in status.get("conditions") or []}
            degraded = conds.get("Degraded") or {}
            self.ledger.check(
                degraded.get("status") == "True" and bool(degraded.get("reason")),
                f"{name}: {phase} without a Degraded condition with a reason",
            )
            self.ledger.check(bool(self._warnings(name)), f"{name}: {phase} without a Warning Event")

    def check_marks(self, name: str, node: str, before: tuple[list[dict[str, Any]], dict[str, str]]) -> None:
        """The Node's taints and annotations exactly as before (the operator takes its own off at the end;
        the record of what the node runs, after a success, is meant to stay)."""
        try:
            wait_for(lambda: marks_of(self.cluster, node) == before, timeout=20, interval=0.5)
            restored = True
        except AssertionError:
            restored = False
        self.ledger.check(restored, f"{name}: node {node} marks not as before: {self.cluster.get('node', node)}")

    def _check_node(self, name: str, node: SimNode, phase: Any) -> None:
        check = self.ledger.check
        node.disarm()
        with open_l0("sim", node.dir / "l0.state") as l0:
            state = l0.query()
        running = [x.id for x in state.running_l1s]
        check(not state.nested, f"{name}: nested virtualization still on ({state.summary()})")
        check(len(running) == 1, f"{name}: {len(running)} hosts running ({state.summary()})")
        check(len(state.partitions) == 1, f"{name}: {len(state.partitions)} partitions ({state.summary()})")
        if phase == "RolledBack":
            check(running == [1], f"{name}: rolled back but the old host is not the one running: {running}")
        if phase == "Succeeded":
            check(running != [1], f"{name}: succeeded but the old host still runs")
        offline = Partitioner(FakeSysfsIO(node.dir / "sysfs")).observe(zones=False)
        check(
            offline.offline_cpus() == node.offline_cpus and offline.offline_blocks() == node.offline_blocks,
            f"{name}: offline now cpus {offline.offline_cpus()} blocks {offline.offline_blocks()}, "
            f"before cpus {node.offline_cpus} blocks {node.offline_blocks}",
        )
        vms = [SimVm(f"{node.name}-vm{i}") for i in range(node.vms)]
        where = asyncio.run(SimMigrator(vms, node.dir / "vms.json").locate())
        self.ledger.vms(len(where))
        check(
            set(where.values()) <= {VmLocation.SOURCE} and len(where) == node.vms,
            f"{name}: VMs not all running on the node's one host: {where}",
        )

        self.check_marks(name, node.name, (node.taints, node.annotations))

    def _warnings(self, name: str) -> list[dict[str, Any]]:
        out = self.cp.kubectl("get", "events", "-A", "-o", "json", "--field-selector", f"involvedObject.name={name}")
        return [e for e in json.loads(out.stdout)["items"] if e.get("type") == "Warning"]


def marks_of(cluster: Cluster, node: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A Node's taints and annotations, but for the record of what it runs."""
    obj = cluster.get("node", node) or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return list((obj.get("spec") or {}).get("taints") or []), {
        k: v for k, v in annotations.items() if k not in NODE_RECORD_KEYS
    }


@contextmanager
def _every(seconds: float, action: Callable[[], None], name: str) -> Iterator[Callable[[], bool]]:
    """Run ``action`` every ``seconds`` in a thread of its own while the block runs; yields whether
    the thread still runs (an action that raised ends it)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            action()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield thread.is_alive
    finally:
        stop.set()
        thread.join(5)


def _why(status: dict[str, Any]) -> str:
    conds = {c["type"]: c for c in status.get("conditions") or []}
    degraded = conds.get("Degraded") or {}
    agent = status.get("agent") or {}
    return f"{degraded.get('reason')}: {degraded.get('message')} / agent: {agent.get('step')} {agent.get('message')}"
