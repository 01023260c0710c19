"""Benchmark: VMM-only refreshes (QEMU replaced, nothing nested) side by side with a host refresh.

A small fleet of machines of the machine simulator, each with real test guests (shared RAM) on an
older Debian build of QEMU, takes a RefreshPlan of VMM refreshes to the installed build, through
the real operator and control plane, one node at a time. Then the first node takes a full host
refresh (a new host booted beside the old one under nested virtualization) with the same guests,
so the two mechanisms are measured on the same node. Figures per refresh:

- per VM (docs/benchmarks.md): downtime and total handover time. VMM: QEMU's own figures on the
  sender (its switchover downtime and total-time; the new QEMU resumes the guest by itself). Host:
  from the agents' timing records as in bench/twohost.py (paused in the old host to running in the
  new, so with the receiver's resume lag; the handover's start to running), QEMU's beside them;
- per node: the agent's steps from Preflight start to Verifying end (its own timing records), and
  the operator's start-to-end (status.startedAt to completedAt, one-second resolution);
- nested seconds (0 for a VMM refresh: nested virtualization is never enabled);
- every guest's memory pattern verified where it ends up, on a 64 MiB sample of its RAM.

Results: bench/results/vmm_refresh.json and .md, with the run's provenance (bench/provenance.py).

    PYTHONPATH=src python bench/vmm_refresh.py [--nodes 3] [--vms 4] [--mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from hostrefresh.api import API_VERSION, Phase
from hostrefresh.api.phases import TERMINAL
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.controlplane.processes import spawn, stop_all
from hostrefresh.kube.names import DEFAULT_NAMESPACE
from hostrefresh.nodeagent.migrate import Inventory, choose_accel
from hostrefresh.nodeagent.timing import parse
from hostrefresh.sim.guest import GuestVerifier
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.guest.qemubuilds import image_tree, installed_build, other_build, target_spec
from hostrefresh.sim.machine.layout import NodeLayout
from hostrefresh.sim.machine.vms import driving_host, launch_in_host
from provenance import markdown as provenance_markdown
from provenance import provenance
from twohost import VERIFY_BYTES, per_vm

RESULTS = Path(__file__).resolve().parent / "results"


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def _get(cp: ControlPlane, kind: str, name: str) -> dict[str, Any]:
    return json.loads(cp.kubectl("get", kind, name, "-o", "json").stdout)  # type: ignore[no-any-return]


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class Fleet:
    """The machines, their guests, and what the benchmark reads from them."""

    def __init__(self, cp: ControlPlane, lab: GuestLab, workdir: Path, images: Path, nodes: int) -> None:
        self.cp, self.lab, self.workdir = cp, lab, workdir
        self.names = [f"vmmb-{i}" for i in range(nodes)]
        self.layouts = {n: NodeLayout(lab.root / "machines" / n) for n in self.names}
        for n in self.names:
            register_node(cp, n, {"bench": "vmm"})
        argv = [sys.executable, "-m", "hostrefresh.sim.machine", "run", f"--root={lab.root / 'machines'}"]
        argv += [f"--node={n}" for n in self.names]
        argv += ["--", f"--kubeconfig={cp.kubeconfig}", f"--namespace={DEFAULT_NAMESPACE}", f"--image-dir={images}"]
        self.machines = spawn(argv, workdir / "machines.log")
        for n in self.names:
            _wait((self.layouts[n].host(1) / "init.pid").exists, 60, f"{n}: its first host")
        self.guests: dict[str, list[str]] = {}

    def launch(self, vms: int, mib: int, qemu: str) -> None:
        for n in self.names:
            self.guests[n] = [f"{n}-g{i}" for i in range(vms)]
            for g in self.guests[n]:
                launch_in_host(self.layouts[n], self.lab.spec(g, shared=True, memory_mib=mib, qemu=qemu))

        async def dirtied() -> None:
            for n, guests in self.guests.items():
                for g in guests:
                    await GuestVerifier(self._aux(n, g), self.lab.root).wait_dirtied(passes=1, timeout=600)

        asyncio.run(dirtied())

    def _aux(self, node: str, guest: str) -> Path:
        layout = self.layouts[node]
        l1 = driving_host(layout)
        inst = Inventory(layout.run(l1)).load(guest).instances["source"]
        return layout.outside(inst.aux_socket, l1)

    def verified(self, node: str) -> bool:
        async def check() -> bool:
            reports = [
                await GuestVerifier(self._aux(node, g), self.lab.root).verify(max_bytes=VERIFY_BYTES)
                for g in self.guests[node]
            ]
            return all(r.ok for r in reports)

        return asyncio.run(check())

    def records(self, node: str, since: float) -> list[dict[str, Any]]:
        """The node's agents' timing records of what started after ``since``."""
        layout = self.layouts[node]
        logs = [*(layout.base / "logs").glob("*agent.log"), *layout.hosts.glob("l1-*/agent.log")]
        records = parse([line for p in logs for line in p.read_text(errors="replace").splitlines()])
        return [r for r in records if r["start"] >= since]

    def steps(self, node: str, since: float) -> tuple[float, dict[str, float]]:
        """Preflight start to Verifying end, and each step's seconds, from the agents' timing records."""
        steps = [r for r in self.records(node, since) if r["kind"] == "step"]
        if not steps:
            raise RuntimeError(f"{node}: no step timing records after {since}")
        each: dict[str, float] = {}
        for r in steps:
            each[r["phase"]] = round(each.get(r["phase"], 0.0) + r["end"] - r["start"], 3)
        return round(max(r["end"] for r in steps) - min(r["start"] for r in steps), 3), each


def row(fleet: Fleet, mechanism: str, obj: dict[str, Any], since: float) -> dict[str, Any]:
    status = obj["status"]
    node = obj["spec"]["nodeName"]
    if status.get("phase") != Phase.SUCCEEDED:
        raise RuntimeError(f"{obj['metadata']['name']}: {status.get('phase')}: {status.get('conditions')}")
    reported = status["agent"]["vms"]
    node_s, each = fleet.steps(node, since)
    if mechanism == "Host":  # the receiver resumes the guest: measured from both agents' records
        figures = per_vm(fleet.records(node, since))
        if len(figures) != len(reported):
            raise RuntimeError(f"{node}: switch records for {sorted(figures)}, {len(reported)} VMs reported")
        downtimes = [f["downtime_ms"] for f in figures.values()]
        totals = [f["total_ms"] for f in figures.values()]
    else:  # the new QEMU resumes the guest itself: QEMU's figures on the sender
        downtimes = [vm["downtimeMillis"] for vm in reported]
        totals = [vm["totalMillis"] for vm in reported]
    return {
        "mechanism": mechanism,
        "node": node,
        "vms": len(reported),
        "paths": sorted({vm["path"] for vm in reported}),
        "verified": fleet.verified(node),
        "verified_bytes_per_vm": VERIFY_BYTES,
        "downtime_ms_max": round(max(downtimes), 2),
        "downtime_ms_median": round(statistics.median(downtimes), 2),
        "downtime_ms_sum": round(sum(downtimes), 2),
        "total_ms_max": round(max(totals), 2),
        "total_ms_median": round(statistics.median(totals), 2),
        # what the agent reported in status: VMM QEMU's counter; Host QEMU's plus the resume lag
        "agent_downtime_ms_max": round(max(vm["downtimeMillis"] for vm in reported), 2),
        "qemu_total_ms_max": round(max(vm["totalMillis"] for vm in reported), 2),
        "node_steps_s": node_s,
        "steps_s": each,
        "node_operator_s": round(_seconds(status["startedAt"], status["completedAt"]), 3),
        "nested_s": round(status["agent"]["nestedSeconds"], 3),
        "phases": list(status["phaseTimestamps"]),
    }


def vmm_plan(fleet: Fleet, target: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    cp = fleet.cp
    since = time.time()
    plan = {
        "apiVersion": API_VERSION,
        "kind": "RefreshPlan",
        "metadata": {"name": "vmm-bench"},
        "spec": {
            "nodeSelector": {"matchLabels": {"bench": "vmm"}},
            "target": target,
            "template": {"scope": "VMM", "handover": {"maxParallel": 1}},
            "maxUnavailable": 1,
            "canary": 1,
            "soakSeconds": 0,
        },
    }
    started = time.monotonic()
    cp.kubectl("apply", "-f", "-", stdin=json.dumps(plan))
    _wait(
        lambda: (_get(cp, "refreshplan", "vmm-bench").get("status") or {}).get("succeeded") == len(fleet.names),
        900,
        "the VMM plan",
    )
    wall = round(time.monotonic() - started, 3)
    items = json.loads(cp.kubectl("get", "hostrefreshes", "-o", "json").stdout)["items"]
    return [row(fleet, "VMM", obj, since) for obj in sorted(items, key=lambda o: o["spec"]["nodeName"])], wall


def host_refresh(fleet: Fleet, node: str, image: Path) -> dict[str, Any]:
    cp = fleet.cp
    since = time.time()
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    obj = {
        "apiVersion": API_VERSION,
        "kind": "HostRefresh",
        "metadata": {"name": f"{node}-host"},
        "spec": {
            "nodeName": node,
            "target": {"version": "2.0", "kernel": str(image), "checksum": f"sha256:{digest}"},
            "partition": {"cpus": 2, "memory": "1Gi"},
            "handover": {"maxParallel": 1},
        },
    }
    cp.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
    done = _wait(
        lambda: (o := _get(cp, "hostrefresh", f"{node}-host")).get("status", {}).get("phase") in TERMINAL and o,
        900,
        f"{node}: the host refresh",
    )
    return row(fleet, "Host", done, since)


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], prov: dict[str, Any]) -> str:
    lines = [
        "# VMM-only refresh beside a host refresh (bench/vmm_refresh.py)",
        "",
        provenance_markdown(prov),
        "",
        f"Accel {meta['accel']}. QEMU {meta['from']} to {meta['to']}. Definitions: docs/benchmarks.md.",
        f"{meta['nodes']} nodes of {meta['vms']} guests x {meta['mib']} MiB (shared RAM), one VM at a time per node.",
        f"The VMM plan (maxUnavailable 1, no soak) took {meta['plan_wall_s']} s from apply to its last node done.",
        "",
        "| mechanism | node | VMs | path | verified (64 MiB sample) | downtime max / median ms | downtime sum ms |"
        " handover max / median ms | node steps s | node (operator) s | nested s | steps s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mechanism']} | {r['node']} | {r['vms']} | {', '.join(r['paths'])} | {r['verified']} |"
            f" {r['downtime_ms_max']} / {r['downtime_ms_median']} | {r['downtime_ms_sum']} |"
            f" {r['total_ms_max']} / {r['total_ms_median']} | {r['node_steps_s']} | {r['node_operator_s']} |"
            f" {r['nested_s']} | {', '.join(f'{k} {v}' for k, v in r['steps_s'].items())} |"
        )
    lines += [
        "",
        "Downtime and handover, VMM: QEMU's own switchover downtime and total-time on the sender (the new",
        "QEMU resumes the guest by itself; ms resolution). Host: from the agents' timing records, the guest",
        "paused in the old host to running in the new one (with the receiver's resume lag), and the",
        "handover's start to running. The two downtimes are not the same measurement: the host path's",
        "includes the receiver's resume lag, the VMM path's is QEMU's counter alone.",
        "Node steps: the agent's Preflight start to Verifying end; steps: each",
        "step's own time. Node (operator): status.startedAt to completedAt, as the operator stamped them.",
        "The host refresh runs on the first node, with the same guests (already on the installed QEMU).",
        "The test guests never idle (each rewrites its RAM in a loop): all of them keep their vCPUs busy on",
        "this machine's 2 cores, and the agents and QEMU's migration threads wait for a CPU with them.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="machines in the fleet (default %(default)s)")
    parser.add_argument("--vms", type=int, default=4, help="guests per machine (default %(default)s)")
    parser.add_argument("--mib", type=int, default=256, help="RAM per guest in MiB (default %(default)s)")
    parser.add_argument("--out", default="vmm_refresh", help="result file stem under bench/results")
    args = parser.parse_args(argv)
    prov = provenance(None if argv is None else [sys.argv[0], *argv])
    workdir = Path(tempfile.mkdtemp(prefix="hostrefresh-bench-vmm-"))
    images = workdir / "images"
    older, installed = other_build(), installed_build()
    target = target_spec(image_tree(installed, images / "qemu-installed"), installed.version.split(":")[-1])
    kernel = images / "vmlinuz-2.0"
    kernel.write_bytes(b"simulated host kernel 2.0\n" * 64)
    lab = GuestLab()
    cp = ControlPlane(workdir / "controlplane")
    cp.start()
    procs = []
    try:
        cp.install_crds(DEFAULT_NAMESPACE)
        kube = [f"--kubeconfig={cp.kubeconfig}", f"--namespace={DEFAULT_NAMESPACE}", "--log-format=plain"]
        procs.append(spawn([sys.executable, "-m", "hostrefresh.operator.main", *kube], workdir / "operator.log"))
        fleet = Fleet(cp, lab, workdir, images, args.nodes)
        procs.append(fleet.machines)
        fleet.launch(args.vms, args.mib, str(older.binary))
        rows, wall = vmm_plan(fleet, target)
        rows.append(host_refresh(fleet, fleet.names[0], kernel))
    finally:
        stop_all(procs)
        asyncio.run(lab.close())
        cp.stop()
    meta = {
        "accel": choose_accel(),
        "from": older.version,
        "to": installed.version,
        "nodes": args.nodes,
        "vms": args.vms,
        "mib": args.mib,
        "plan_wall_s": wall,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"provenance": prov, "meta": meta, "rows": rows}, indent=2) + "\n"
    )
    (RESULTS / f"{args.out}.md").write_text(markdown(rows, meta, prov))
    print(markdown(rows, meta, prov))
    return 0


if __name__ == "__main__":
    sys.exit(main())
