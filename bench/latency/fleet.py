"""The simulated fleet a scenario runs against, and the pace of its simulated L0.

A node here is a Node object marked Ready, a simulated machine (simulated L0, fake sysfs, simulated
VMs) and, in the one agent process, an agent for it. The simulated L0 answers at once unless told
otherwise; the pace gives its calls the durations of a real refresh so that refreshes overlap.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Node
from lightkube.types import PatchType

from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.cluster import free_port
from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.sim.node import SimNodeSpec, create_sim_node

from .cpu import CpuMeter
from .processes import Proc, leading, leases_ready, start_agent, start_operator

#: Simulated L0 call durations (seconds, drawn per node, seeded). The simulated L0 answers at once
#: unless told otherwise, which would make a refresh a few milliseconds of work.
#: "host": what a refresh on a real machine spends in the L0: booting the new host (kernel and
#: userspace up to its agent) takes 10-30 s, switching nested virtualization on or off and
#: retiring a host about a second. "compressed": the same refresh squeezed into ~3 s, so that 100
#: refreshes put 10x the write rate of real ones on the API server (a stress test: on 2 shared cores
#: it saturates them, and the latencies then measure the queue, not the operator).
PACES: dict[str, dict[Call, tuple[float, float]]] = {
    "host": {
        Call.NESTED_ENABLE: (0.5, 2.0),
        Call.L1_BOOT: (10.0, 30.0),
        Call.L1_RETIRE: (0.5, 2.0),
        Call.NESTED_DISABLE: (0.5, 2.0),
    },
    "compressed": {
        Call.NESTED_ENABLE: (0.3, 1.5),
        Call.L1_BOOT: (0.3, 1.5),
        Call.NESTED_DISABLE: (0.3, 1.5),
    },
}


@dataclass
class Stage:
    """What a scenario runs against; ``started`` is when the operator was started (audit window)."""

    nodes: list[str]
    agent: Proc
    op: Proc
    port: int
    started: float

    def meter(self, cp: ControlPlane) -> CpuMeter:
        return CpuMeter({**cp.pids(), "operator": self.op.pid(), "agent": self.agent.pid()})

    def stop(self) -> None:
        self.op.stop()
        self.agent.stop()


@dataclass
class Bench:
    cp: ControlPlane
    workdir: Path
    client: Client
    latency: dict[Call, tuple[float, float]]
    seed: int
    profile_seconds: int = 0
    operator_args: tuple[str, ...] = ()
    fleet_nice: int = 0

    def target(self) -> dict[str, str]:
        path = self.workdir / "images" / "vmlinuz-2.0"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(b"simulated host kernel 2.0\n" * 64)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"version": "2.0", "kernel": str(path), "checksum": f"sha256:{digest}"}

    def namespace(self, name: str) -> None:
        self.client.create(Namespace(metadata=ObjectMeta(name=name)))

    def fleet(self, prefix: str, n: int) -> list[str]:
        """``n`` Ready nodes and their simulated machines; L0 calls slowed so refreshes overlap."""
        rnd = random.Random(f"{self.seed}-{prefix}")
        nodes = [f"{prefix}-{i:03d}" for i in range(n)]
        root = self.workdir / "nodes"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for node in nodes:
            create_sim_node(root, node, SimNodeSpec(sim_vms=2))
            with open_l0("sim", root / node / "l0.state") as l0:
                for call, (low, high) in self.latency.items():
                    lat = rnd.uniform(low, high)
                    l0.sim_inject_fault(FaultRule(call=call, status=Status.OK, latency_s=lat, times=0))
            self.client.create(Node(metadata=ObjectMeta(name=node, labels={"fleet": prefix})))
            cond = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated node"}
            cond |= {"lastHeartbeatTime": now, "lastTransitionTime": now}
            self.client.patch(Node.Status, node, {"status": {"conditions": [cond]}}, patch_type=PatchType.MERGE)
        return nodes

    def wait(self, what: str, check: Callable[[], bool], timeout: float, procs: Iterable[Proc] = ()) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited; see {p.log}")
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f}s: {what} (logs in {self.workdir})")

    def stage(self, tag: str, n: int) -> Stage:
        """A namespace, ``n`` simulated nodes, their agent process and a leading operator process."""
        ns = f"bench-{tag}"
        self.namespace(ns)
        nodes = self.fleet(tag, n)
        agent = start_agent(self.cp, self.workdir, f"agent-{tag}", ns, nodes, nice=self.fleet_nice)
        op: Proc | None = None
        try:
            self.wait("agent leases", lambda: leases_ready(self.client, ns, n), 120, [agent])
            port = free_port()
            started = time.time()
            op = start_operator(self.cp, self.workdir, f"operator-{tag}", ns, port, self.operator_args)
            self.wait("operator leads", lambda: leading(self.client, ns, f"operator-{tag}"), 60, [op])
            time.sleep(1.0)
        except BaseException:
            for proc in (op, agent):
                if proc is not None:
                    proc.stop()
            raise
        return Stage(nodes, agent, op, port, started)
