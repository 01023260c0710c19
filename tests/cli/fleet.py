"""Finished, failed and running rollouts made by hand: objects created, then their status patched
(status is a subresource), so the plugin has real API objects to read without an operator running."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.types import PatchType

import hostrefresh
from hostrefresh.api.names import NODE_LABEL, PLAN_LABEL
from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource

SRC = Path(hostrefresh.__file__).resolve().parents[1]
T0 = datetime.now(UTC) - timedelta(minutes=30)
Obj = dict[str, Any]


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def cond(type_: str, status: str, reason: str, message: str = "", at: float = 0.0) -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": ts(at)}


def plugin_dir(tmp: Path) -> Path:
    """A ``kubectl-hostrefresh`` on PATH that runs this checkout's plugin with this interpreter."""
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "kubectl-hostrefresh"
    script.write_text(
        f'#!/bin/sh\nPYTHONPATH="{SRC}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m hostrefresh.cli "$@"\n'
    )
    script.chmod(0o755)
    # kubectl (1.26+) completes `kubectl hostrefresh ...` by asking this one (entry point complete_main).
    complete = tmp / "kubectl_complete-hostrefresh"
    complete.write_text(
        f'#!/bin/sh\nPYTHONPATH="{SRC}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" '
        '-c "from hostrefresh.cli.main import complete_main; complete_main()" "$@"\n'
    )
    complete.chmod(0o755)
    return tmp


@dataclass
class Kubectl:
    """Runs ``kubectl hostrefresh ...`` through the real kubectl."""

    cp: ControlPlane
    path_dir: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full = {
            **os.environ,
            "PATH": f"{self.path_dir}:{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(self.cp.kubeconfig),
            "COLUMNS": "250",
            **(env or {}),
        }
        return subprocess.run(
            [str(self.cp.tools.kubectl), "hostrefresh", *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_tty(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        """Like ``run`` with stdout on a pseudo-terminal (what a user at a shell sees); exit code and output."""
        main, child = os.openpty()
        env = {
            **os.environ,
            "PATH": f"{self.path_dir}:{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(self.cp.kubeconfig),
            "COLUMNS": "200",
            "TERM": "xterm",
        }
        proc = subprocess.Popen(
            [str(self.cp.tools.kubectl), "hostrefresh", *args], env=env, stdout=child, stderr=child, close_fds=True
        )
        os.close(child)
        chunks: list[bytes] = []
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child side closed
                break
            if not data:
                break
            chunks.append(data)
        os.close(main)
        return proc.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def client(cp: ControlPlane) -> Client:
    return sync_client(cp.kubeconfig)


TARGET = {
    "version": "6.12.4-kvm1",
    "kernel": "/var/lib/hostrefresh/images/vmlinuz-6.12.4-kvm1",
    "checksum": "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
}
FORWARD = [
    "Preflight",
    "Partitioning",
    "NestedEnabling",
    "BootingTarget",
    "Migrating",
    "Retiring",
    "Devirtualizing",
    "Verifying",
]


def make_plan(c: Client, name: str, status: Obj, canary: int = 1, paused: bool = False) -> None:
    body = {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "RefreshPlan",
        "metadata": {"name": name},
        "spec": {"nodeSelector": {"matchLabels": {"pool": name}}, "target": TARGET, "canary": canary, "paused": paused},
    }
    c.create(RefreshPlanResource.from_dict(body))
    set_plan_status(c, name, status)


def set_plan_status(c: Client, name: str, status: Obj) -> None:
    c.patch(
        RefreshPlanResource.Status, name, {"status": {"observedGeneration": 1, **status}}, patch_type=PatchType.MERGE
    )


def make_refresh(c: Client, name: str, node: str, plan: str | None, status: Obj, spec: Obj | None = None) -> None:
    labels = {PLAN_LABEL: plan, NODE_LABEL: node} if plan else {}
    body = {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "target": TARGET, **(spec or {})},
    }
    c.create(HostRefreshResource.from_dict(body))
    if status:
        set_refresh_status(c, name, status)


def set_refresh_status(c: Client, name: str, status: Obj) -> None:
    c.patch(HostRefreshResource.Status, name, {"status": status}, patch_type=PatchType.MERGE)


def vms(node: str, n: int = 2, result: str = "HandedOver") -> list[Obj]:
    return [
        {"name": f"{node}-vm{i}", "result": result, "path": "ZeroCopy", "downtimeMillis": 4.5 + i, "totalMillis": 120.0}
        for i in range(n)
    ]


def refresh_status(
    start: float, end_phase: str, steps: Sequence[str] = FORWARD, step: float = 3.0, nested: float = 9.0
) -> Obj:
    """A refresh that started at ``start`` s after T0, went through ``steps`` (``step`` s each) and ended in ``end_phase``."""
    stamps = {phase: ts(start + i * step) for i, phase in enumerate(steps)}
    end = start + len(steps) * step
    ongoing = end_phase not in ("Succeeded", "Failed", "RolledBack")
    if not ongoing:
        stamps[end_phase] = ts(end)
    status: Obj = {
        "observedGeneration": 1,
        "phase": end_phase if not ongoing else steps[-1],
        "directive": "RollBack" if end_phase in ("RollingBack", "RolledBack") else "Proceed",
        "startedAt": ts(start),
        "phaseTimestamps": stamps,
        "nestedSeconds": nested,
    }
    if not ongoing:
        status["completedAt"] = ts(end)
    return status
