"""Test harness: simulated nodes on the real control plane, with the real operator and agent processes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.kube.names import DEFAULT_NAMESPACE
from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.sim.guest.qemubuilds import QemuBuild, image_tree, target_spec
from hostrefresh.sim.node import SimNodeSpec, create_sim_node

#: Each forward step, and the L0 call inside it a test makes slow to catch the agent in that step
#: (Verifying makes no L0 call of its own: it only reads state and is idempotent).
STEP_CALLS: list[tuple[str, Call]] = [
    ("Preflight", Call.PROBE),
    ("Partitioning", Call.PARTITION_CREATE),
    ("NestedEnabling", Call.NESTED_ENABLE),
    ("BootingTarget", Call.L1_BOOT),
    ("Migrating", Call.MEM_GRANT),
    ("Retiring", Call.L1_RETIRE),
    ("Devirtualizing", Call.NESTED_DISABLE),
]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2, what: str = "") -> Any:
    """Poll until ``predicate`` returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}; last: {last!r}")


def image_dir(workdir: Path) -> Path:
    """The directory of a test's target images, the one its agents allow (``--image-dir``)."""
    return workdir / "images"


@dataclass
class Cluster:
    """The control plane plus helpers to make simulated nodes and refreshes."""

    cp: ControlPlane
    workdir: Path

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self.cp.kubectl(*args).stdout
        return json.loads(out) if out.strip() else None

    def apply(self, obj: dict[str, Any]) -> None:
        self.cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(obj))

    def add_node(self, name: str, labels: dict[str, str] | None = None, ready: bool = True) -> None:
        register_node(self.cp, name, labels, ready)

    def target_image(self, version: str) -> dict[str, str]:
        """A (simulated) target host image on disk and its spec.target."""
        path = image_dir(self.workdir) / f"vmlinuz-{version}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(f"simulated host kernel {version}\n".encode() * 64)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"version": version, "kernel": str(path), "checksum": f"sha256:{digest}"}

    def target_qemu(self, binary: Path, version: str) -> dict[str, Any]:
        """A QEMU build copied among the target images (a tree of its own), and its spec.target for a
        VMM refresh. The copy keeps ``qemu-system`` in its name: tests find QEMUs by it."""
        copy = image_tree(QemuBuild(version, binary), image_dir(self.workdir) / f"qemu-{version}")
        return target_spec(copy, version)

    def host_refresh(self, name: str, node: str, version: str = "2.0", **spec: Any) -> dict[str, Any]:
        obj = {
            "apiVersion": "hostrefresh.io/v1alpha1",
            "kind": "HostRefresh",
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "target": self.target_image(version),
                "partition": {"cpus": 2, "memory": "1Gi"},
                **spec,
            },
        }
        self.apply(obj)
        return obj

    def event_reasons(self, name: str) -> set[str]:
        """Reasons of the Events about the object ``name``."""
        events = json.loads(self.cp.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
        return {e["reason"] for e in events if e["involvedObject"].get("name") == name}

    def phase(self, name: str) -> str | None:
        obj = self.get("hostrefresh", name)
        return None if obj is None else (obj.get("status") or {}).get("phase")

    def wait_phase(self, name: str, phases: set[str], timeout: float = 60.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get("hostrefresh", name)
            if obj and (obj.get("status") or {}).get("phase") in phases:
                return obj
            return None

        return wait_for(check, timeout, what=f"{name} in {phases}")  # type: ignore[no-any-return]


class Process:
    """A component started as a real process (so it can be SIGKILLed like a real crash)."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv, self.log_path = argv, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def operator_process(cp: ControlPlane, workdir: Path, name: str = "operator", *extra: str) -> Process:
    argv = [
        sys.executable,
        "-m",
        "hostrefresh.operator.main",
        f"--kubeconfig={cp.kubeconfig}",
        f"--namespace={DEFAULT_NAMESPACE}",
        "--log-format=plain",
        f"--identity={name}",
        *extra,
    ]
    return Process(argv, workdir / f"{name}.log")


def agent_process(cp: ControlPlane, workdir: Path, nodes: list[str], *extra: str, name: str = "agent") -> Process:
    argv = [
        sys.executable,
        "-m",
        "hostrefresh.sim.agent",
        f"--kubeconfig={cp.kubeconfig}",
        f"--namespace={DEFAULT_NAMESPACE}",
        f"--sim-root={workdir / 'nodes'}",
        f"--sim-nodes={','.join(nodes)}",
        "--lease-seconds=10",
        f"--identity={name}",
        f"--image-dir={image_dir(workdir)}",  # where Cluster(cp, workdir).target_image puts them
        *extra,
    ]
    return Process(argv, workdir / f"{name}.log")


@contextmanager
def running(*procs: Process) -> Iterator[None]:
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.stop()


def ensure_namespace(cp: ControlPlane, name: str = DEFAULT_NAMESPACE) -> None:
    if cp.kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name").stdout.strip() == "":
        cp.kubectl("create", "namespace", name)


def slow_node(root: Path, node: str, call: Call, seconds: float, spec: SimNodeSpec | None = None) -> None:
    """A simulated node whose next ``call`` to the L0 takes ``seconds`` (to catch a step in the act)."""
    create_sim_node(root, node, spec or SimNodeSpec())
    with open_l0("sim", root / node / "l0.state") as l0:
        l0.sim_inject_fault(FaultRule(call=call, status=Status.OK, latency_s=seconds, times=1))
