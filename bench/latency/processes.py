"""The processes a scenario starts (one agent process hosting every simulated node, one operator),
how to tell they are up, and the operator's own counters.

Each is a child in its own session, stopped by its own pid only (SIGTERM, then SIGKILL of its group).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from lightkube import Client
from lightkube.resources.coordination_v1 import Lease

from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.names import AGENT_COMPONENT_LABEL

from .audit import AGENT_USER, OPERATOR_USER

#: The operator's leader-election Lease (a literal in ``hostrefresh.operator.main``: no public name).
OPERATOR_LEASE = "hostrefresh-operator"


class Proc:
    """A child process in its own session; stopped by its own pid only."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, nice: int = 0) -> Proc:
        """Start it; ``nice`` > 0 lowers its CPU priority (every thread of it: nice(1) before exec)."""
        argv = ["nice", "-n", str(nice), *self.argv] if nice > 0 else self.argv
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_agent(cp: ControlPlane, workdir: Path, name: str, namespace: str, nodes: list[str], nice: int = 0) -> Proc:
    """The agent process hosting the simulated ``nodes`` (under ``workdir/nodes``), as ``AGENT_USER``."""
    argv = [
        sys.executable,
        "-m",
        "hostrefresh.sim.agent",
        f"--kubeconfig={cp.user_kubeconfig(AGENT_USER, ('system:masters',))}",
        f"--namespace={namespace}",
        f"--sim-root={workdir / 'nodes'}",
        f"--sim-nodes={','.join(nodes)}",
        "--lease-seconds=30",
        "--retry-seconds=1",
        f"--identity={name}",
        f"--image-dir={workdir / 'images'}",  # where Bench.target() puts the image
    ]
    return Proc(name, argv, workdir / f"{name}.log").start(nice=nice)


def start_operator(
    cp: ControlPlane, workdir: Path, name: str, namespace: str, metrics_port: int, extra_args: Iterable[str] = ()
) -> Proc:
    """The operator process, as ``OPERATOR_USER``, serving its metrics on ``metrics_port``."""
    kubeconfig = cp.user_kubeconfig(OPERATOR_USER, ("system:masters",))
    argv = [
        sys.executable,
        "-m",
        "hostrefresh.operator.main",
        f"--kubeconfig={kubeconfig}",
        f"--namespace={namespace}",
        "--log-format=plain",
        f"--identity={name}",
        f"--metrics-port={metrics_port}",
        *extra_args,
    ]
    return Proc(name, argv, workdir / f"{name}.log").start()


def leases_ready(client: Client, namespace: str, n: int) -> bool:
    """Whether the agent renews a heartbeat Lease for (at least) ``n`` nodes."""
    leases = client.list(Lease, namespace=namespace, labels=dict(AGENT_COMPONENT_LABEL.items()))
    return len(list(leases)) >= n


def leading(client: Client, namespace: str, identity: str) -> bool:
    """Whether the operator ``identity`` holds the leader-election Lease."""
    try:
        lease = client.get(Lease, OPERATOR_LEASE, namespace=namespace)
    except Exception:
        return False
    return lease.spec is not None and lease.spec.holderIdentity == identity


def scrape(port: int) -> dict[str, float]:
    """The operator's own counters (and reconcile time) from its Prometheus endpoint."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith(
            ("hostrefresh_operator_api_requests_total{", "hostrefresh_operator_reconcile_duration_seconds_")
        ):
            key, _, value = line.rpartition(" ")
            if "_bucket" not in key:
                out[key] = float(value)
    return out
