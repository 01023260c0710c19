"""Fleet scale: a thousand simulated nodes hosted by one agent process, refreshed by one RefreshPlan.

Starts its own control plane, registers N simulated nodes (Node object + simulated L0 + fake sysfs +
simulated VMs), one agent process hosting all of them, the operator, and a RefreshPlan over all of
them; measures how long the agent host takes to come up, its memory, the rollout's wall time and
throughput, the API server's and agent's CPU time, the operator's peak memory, and the rollout's wall time
against its ideal (waves x the median node's own refresh time). Prints a table and writes
bench/results/fleet_scale.json and .md.

    python bench/fleet_scale.py [--nodes 1000] [--max-unavailable 10%] [--vms 2] [--boot-seconds 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from hostrefresh.api import API_VERSION
from hostrefresh.api.refreshplan import resolve_count
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.processes import stop_all
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.names import DEFAULT_NAMESPACE
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource
from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.operator.views import ZONE_LABEL
from hostrefresh.sim.node import SimNodeSpec, create_sim_node
from provenance import markdown as provenance_markdown
from provenance import provenance

REPO = Path(__file__).resolve().parents[1]
CANARY = 1
RESULTS = REPO / "bench" / "results"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mib(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _per_node_seconds(client: Any) -> list[float]:
    """Each finished HostRefresh's own duration: its first phase timestamp to its last."""
    out = []
    for hr in client.list(HostRefreshResource, namespace=None):
        stamps = [_parse(v) for v in ((hr.to_dict().get("status") or {}).get("phaseTimestamps") or {}).values()]
        if len(stamps) >= 2:
            out.append((max(stamps) - min(stamps)).total_seconds())
    return sorted(out)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks of 10 ms


def run(nodes: int, max_unavailable: str, vms: int, boot_seconds: float, workdir: Path) -> dict[str, Any]:
    cp = ControlPlane(workdir / "cp")
    cp.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cp.install_crds(DEFAULT_NAMESPACE)
        names = [f"scale-{i:04d}" for i in range(nodes)]
        client = sync_client(cp.kubeconfig)
        t0 = time.monotonic()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "simulated node",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for i, name in enumerate(names):
            create_sim_node(workdir / "nodes", name, SimNodeSpec(cpus=4, memory_blocks=16, sim_vms=vms))
            if boot_seconds > 0:  # the new host's boot, as long as a real one's: waves then overlap as in a fleet
                with open_l0("sim", workdir / "nodes" / name / "l0.state") as l0:
                    l0.sim_inject_fault(FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=boot_seconds, times=0))
            labels = {"fleet": "scale", ZONE_LABEL: f"zone-{i % 4}"}
            client.create(Node(metadata=ObjectMeta(name=name, labels=labels)))
            client.patch(Node.Status, name, {"status": {"conditions": [ready]}}, patch_type=PatchType.MERGE)
        setup_s = time.monotonic() - t0
        kube = ["--kubeconfig", str(cp.kubeconfig), "--namespace", DEFAULT_NAMESPACE]
        agent_log = open(workdir / "agent.log", "wb")  # noqa: SIM115 - closed in finally through the process
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hostrefresh.sim.agent",
                *kube,
                "--sim-root",
                str(workdir / "nodes"),
                "--sim-nodes",
                ",".join(names),
                "--lease-seconds=60",
                "--sim-vms",
                str(vms),
                "--image-dir",
                str(workdir / "images"),
            ],
            stdout=agent_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(agent)
        t1 = time.monotonic()
        while len(list(client.list(Lease, namespace=DEFAULT_NAMESPACE))) < nodes:
            time.sleep(1)
        agent_up_s = time.monotonic() - t1
        agent_rss = _rss_mib(agent.pid)
        operator_log = open(workdir / "operator.log", "wb")  # noqa: SIM115 - the child writes it
        operator = subprocess.Popen(
            [sys.executable, "-m", "hostrefresh.operator.main", *kube, "--log-format=plain"],
            stdout=operator_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(operator)
        image = workdir / "images" / "vmlinuz"
        image.parent.mkdir(exist_ok=True)
        image.write_bytes(b"simulated kernel\n" * 64)
        checksum = "sha256:" + hashlib.sha256(image.read_bytes()).hexdigest()
        plan = {
            "apiVersion": API_VERSION,
            "kind": "RefreshPlan",
            "metadata": {"name": "scale"},
            "spec": {
                "nodeSelector": {"matchLabels": {"fleet": "scale"}},
                "target": {"version": "2.0", "kernel": str(image), "checksum": checksum},
                "template": {"partition": {"cpus": 1, "memory": "512Mi"}},
                "maxUnavailable": max_unavailable,
                "canary": CANARY,
                "soakSeconds": 0,
            },
        }
        cp.kubectl("apply", "-f", "-", stdin=json.dumps(plan))
        t2 = time.monotonic()
        status: dict[str, Any] = {}
        while time.monotonic() - t2 < 3600:
            try:
                status = client.get(RefreshPlanResource, "scale").to_dict().get("status") or {}
            except Exception:
                time.sleep(1)
                continue
            done = status.get("succeeded", 0) + status.get("failed", 0)
            print(
                f"\r{time.monotonic() - t2:6.0f}s  succeeded {status.get('succeeded', 0)}  "
                f"failed {status.get('failed', 0)}  active {status.get('active', 0)}",
                end="",
                flush=True,
            )
            if done >= nodes:
                break
            time.sleep(2)
        print()
        rollout_s = time.monotonic() - t2
        per_node = _per_node_seconds(client)
        median = per_node[len(per_node) // 2] if per_node else 0.0
        # Waves as maxUnavailable cuts the fleet: the canary, then the rest so many at a time (the plan's
        # own wavesStarted counts starts from rest only: refills of freed slots are not new waves).
        limit = resolve_count(max_unavailable if max_unavailable.endswith("%") else int(max_unavailable), nodes) or 1
        waves = 1 + math.ceil((nodes - CANARY) / limit)
        ideal_s = waves * median
        return {
            "nodes": nodes,
            "max_unavailable": max_unavailable,
            "vms_per_node": vms,
            "boot_seconds": boot_seconds,
            "setup_seconds": round(setup_s, 1),
            "agent_up_seconds": round(agent_up_s, 1),
            "agent_rss_mib_idle": round(agent_rss, 1),
            "agent_rss_mib_after": round(_rss_mib(agent.pid), 1),
            "agent_cpu_seconds": _cpu_seconds(agent.pid),
            "operator_rss_mib": round(_rss_mib(operator.pid), 1),
            "operator_cpu_seconds": _cpu_seconds(operator.pid),
            "operator_peak_rss_mib": round(_peak_rss_mib(operator.pid), 1),
            "rollout_seconds": round(rollout_s, 1),
            "waves": waves,
            "per_node_seconds_median": round(median, 2),
            "ideal_seconds": round(ideal_s, 1),
            "rollout_over_ideal": round(rollout_s / ideal_s, 3) if ideal_s else None,
            "succeeded": status.get("succeeded", 0),
            "failed": status.get("failed", 0),
            "refreshes_per_minute": round(60 * status.get("succeeded", 0) / rollout_s, 1),
        }
    finally:
        stop_all(procs, grace=15)
        cp.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--max-unavailable", default="10%")
    parser.add_argument("--vms", type=int, default=2)
    parser.add_argument(
        "--boot-seconds",
        type=float,
        default=20.0,
        help="how long each node's new host takes to boot in the simulated L0 (0: at once)",
    )
    args = parser.parse_args()
    prov = provenance()
    with tempfile.TemporaryDirectory(prefix="hostrefresh-scale-") as tmp:
        result = run(args.nodes, args.max_unavailable, args.vms, args.boot_seconds, Path(tmp))
    result["recorded"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fleet_scale.json").write_text(json.dumps({"provenance": prov, **result}, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    (RESULTS / "fleet_scale.md").write_text(
        f"# Fleet scale\n\n{provenance_markdown(prov)} Definitions: docs/benchmarks.md.\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n"
    )
    print(json.dumps(result, indent=2))
    return 0 if result["succeeded"] == args.nodes else 1


if __name__ == "__main__":
    sys.exit(main())
