"""Node objects for simulated nodes on the local control plane (no kubelet runs to make them)."""

from __future__ import annotations

import json
import time

from hostrefresh.controlplane.cluster import ControlPlane


def set_node_ready(cp: ControlPlane, name: str, ready: bool) -> None:
    """Write the Ready condition a kubelet would report."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "simulated node",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    cp.kubectl(
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [condition]}}),
    )


def register_node(cp: ControlPlane, name: str, labels: dict[str, str] | None = None, ready: bool = True) -> None:
    """Create (or update) the Node object of a simulated node and set its Ready condition."""
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}}
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(body))
    set_node_ready(cp, name, ready)
