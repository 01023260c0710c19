"""The kind cluster of the kind e2e: made by deploy/kind/up.sh (images, node image, cluster, chart),
deleted by deploy/kind/down.sh after the last test of the session, whatever happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.controlplane.tools import ensure_tools

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "hostrefresh-e2e"
NAMESPACE = "hostrefresh-system"


@dataclass
class Kind:
    """The running cluster, and the commands the tests drive it with."""

    name: str
    kubeconfig: Path
    bin_dir: Path

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        # kubectl finds the `kubectl hostrefresh` plugin (kubectl-hostrefresh) on PATH: this Python's.
        env["PATH"] = f"{self.bin_dir}:{Path(sys.executable).parent}:{env['PATH']}"
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), *args], capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def get(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return out

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["/usr/bin/docker", *args], capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
        return result

    def workers(self) -> list[str]:
        nodes = self.get("nodes", "-l", "hostrefresh.io/hypervisor=true")["items"]
        return sorted(n["metadata"]["name"] for n in nodes)

    def agent_pods(self) -> dict[str, str]:
        """Node name -> name of the running agent pod on it."""
        pods = self.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=agent")["items"]
        return {
            p["spec"]["nodeName"]: p["metadata"]["name"]
            for p in pods
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        }

    def in_agent(self, node: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        pod = self.agent_pods()[node]
        return self.kubectl("exec", "-n", NAMESPACE, pod, "--", *cmd, check=False)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kind]:
    """The kind cluster, for the tests of one module (there is one): torn down right after them, not at
    the end of the session, so that its nodes and their VMs do not load the rest of the suite (on 2
    cores they had six guests running through the last quarter of `make test`)."""
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    if os.environ.get("HOSTREFRESH_KIND_KEEP", "") not in ("", "0"):
        kubeconfig = REPO / ".cache" / "kind" / f"{CLUSTER}.kubeconfig"
    env = dict(os.environ, KIND_CLUSTER=CLUSTER, KIND_KUBECONFIG=str(kubeconfig), PYTHON=sys.executable)
    down = [str(REPO / "deploy/kind/down.sh")]
    # HOSTREFRESH_KIND_KEEP=1 (for a developer iterating on these tests): reuse the cluster, keep it after.
    keep = os.environ.get("HOSTREFRESH_KIND_KEEP", "") not in ("", "0")
    if not keep:
        # A cluster left by an interrupted run. down.sh builds nothing (the builds are `make test-setup`'s,
        # or up.sh's below), so this is quick even on a machine that has built nothing yet.
        subprocess.run(down, env=env, capture_output=True, timeout=120)
    started = time.monotonic()
    # Its own session: on a timeout, up.sh and everything it started (docker builds, kind) are killed.
    up = subprocess.Popen(
        [str(REPO / "deploy/kind/up.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            out, err = up.communicate(timeout=2400)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            out, err = up.communicate()
            raise AssertionError(f"deploy/kind/up.sh did not finish in 40 min:\n{err[-6000:]}") from None
        if up.returncode != 0:
            raise AssertionError(f"deploy/kind/up.sh failed ({up.returncode}):\n{out}\n{err[-6000:]}")
        print(f"\nkind e2e cluster ready in {time.monotonic() - started:.0f}s:\n{err.strip()}")
        yield Kind(CLUSTER, kubeconfig, ensure_tools().bin_dir)
    finally:
        if not keep:
            subprocess.run(down, env=env, capture_output=True, timeout=300)
