"""Benchmark: refreshes of a node whose old and new host are two real isolated hosts (two agents).

Each scenario is one refresh of one machine of the machine simulator through the real operator and
the real control plane: N test guests of M MiB (shared RAM, zero-copy) start in the old host, the new
host's agent starts the destination QEMUs in its own host before the handover (BootingTarget), the
old host's agent sends every VM, the retire kills the old host. Figures:

- per VM (from the agents' timing records, docs/benchmarks.md): downtime, from the guest paused in
  the old host to the guest running in the new one (paused = the destination's QEMU reported the
  state loaded, minus QEMU's downtime on the sender; running = the receiver's `cont` returned), so it
  includes the receiver's resume lag; total, from the handover's start (the sender about to start
  the migration) to the guest running in the new host. QEMU's own figures (its sender-side downtime
  and total-time, which leave the receiver out) are kept beside them;
- the switch of all VMs: wall time from the first guest paused to the last guest running in the new
  host (paused and running as above);
- the nested window (nested enable to nested disable, from the agents' timing records), split into
  its steps, and our own overhead inside it: time covered by neither an L0 call, nor the new host's
  boot (the L0 booting the L1 and the host preparing its destinations), nor a QEMU migration.

Results: bench/results/twohost.json and .md, with the run's provenance (bench/provenance.py).

    PYTHONPATH=src python bench/twohost.py [--scenarios 1x256,1x1024,1x4096,8x256,8x1024]
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
from pathlib import Path
from typing import Any

from hostrefresh.api import API_VERSION, Phase
from hostrefresh.api.phases import FORWARD_STEPS, TERMINAL
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.controlplane.processes import spawn, stop_all
from hostrefresh.kube.names import DEFAULT_NAMESPACE
from hostrefresh.nodeagent.migrate import Inventory, choose_accel
from hostrefresh.nodeagent.timing import parse
from hostrefresh.sim.guest import GuestVerifier
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.machine.layout import NodeLayout
from hostrefresh.sim.machine.vms import launch_in_host
from provenance import markdown as provenance_markdown
from provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"
#: The steps a host refresh takes between Preflight and Verifying, each timed on its own.
PARTS = [str(p) for p in FORWARD_STEPS[1:-1]]
#: Bytes of each guest's memory pattern verified after the refresh: a sample, not the whole RAM.
VERIFY_BYTES = 64 << 20


def _union(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of the union of ``intervals`` clipped to [lo, hi]."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo))
    total, end = 0.0, lo
    for a, b in clipped:
        start = max(a, end)
        if b > start:
            total += b - start
            end = b
    return total


def split_window(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The nested window and its parts from both agents' timing records."""
    l0 = [r for r in records if r["kind"] == "l0"]
    on = min(r["end"] for r in l0 if r["call"] == "nested_enable")
    off = max(r["end"] for r in l0 if r["call"] == "nested_disable")
    steps = {r["phase"]: r for r in records if r["kind"] == "step"}
    busy = [(r["start"], r["end"]) for r in records if r["kind"] in ("l0", "target-ready", "migration", "switch")]
    window = off - on
    out: dict[str, Any] = {"nested_s": round(window, 3)}
    for part in PARTS:
        rec = steps.get(part)
        out[f"{part}_s"] = None if rec is None else round(rec["end"] - rec["start"], 3)
    out["l0_calls_s"] = round(_union([(r["start"], r["end"]) for r in l0], on, off), 3)
    out["host_boot_s"] = round(
        _union([(r["start"], r["end"]) for r in records if r["kind"] == "target-ready"], on, off), 3
    )
    out["migrations_s"] = round(
        _union([(r["start"], r["end"]) for r in records if r["kind"] in ("migration", "switch")], on, off), 3
    )
    out["overhead_s"] = round(window - _union(busy, on, off), 3)
    return out


def vm_moments(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per VM: when its handover started, when the guest paused in the old host, when it ran in the new.

    started: the sender's stamp just before it starts the migration (its ``migration`` record);
    paused: the destination's QEMU reported the state loaded (the ``switch`` record's start, QEMU's
    own event time) minus QEMU's downtime on the sender (the guest stood still that long before);
    running: the receiver's stamp once ``cont`` returned (``running``; older records lack it, and
    their end, after the receiver's record was written, stands in). The last handover of each VM counts.
    """
    migrations = {r["vm"]: r for r in records if r["kind"] == "migration"}
    out: dict[str, dict[str, float]] = {}
    for r in records:
        if r["kind"] != "switch":
            continue
        sent = migrations.get(r["vm"])
        qemu_downtime_s = ((sent or {}).get("downtime_ms") or 0.0) / 1000
        out[r["vm"]] = {
            "started": float(sent["start"]) if sent else float(r["start"]),
            "paused": float(r["start"]) - qemu_downtime_s,
            "running": float(r.get("running") or r["end"]),
        }
    return out


def per_vm(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per VM, ms: downtime (paused to running) and total (handover started to running)."""
    return {
        vm: {
            "downtime_ms": round((m["running"] - m["paused"]) * 1000, 2),
            "total_ms": round((m["running"] - m["started"]) * 1000, 2),
        }
        for vm, m in vm_moments(records).items()
    }


def switch_window(records: list[dict[str, Any]]) -> float | None:
    """First guest paused to last guest running in the new host, ms."""
    moments = vm_moments(records).values()
    if not moments:
        return None
    paused = min(m["paused"] for m in moments)
    running = max(m["running"] for m in moments)
    return round(float(running - paused) * 1000, 2)


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def scenario(cp: ControlPlane, lab: GuestLab, workdir: Path, image: Path, vms: int, mib: int) -> dict[str, Any]:
    node = f"bench-{vms}x{mib}"
    register_node(cp, node, {})
    layout = NodeLayout(lab.root / "machines" / node)
    # The simulated machine's (fake) 128 MiB memory blocks: the guests' RAM, the new host's 1 GiB
    # partition (8 blocks) and the 512 MiB the agent's Preflight keeps for the old host (4 blocks).
    blocks = max(32, 8 + 4 + -(-vms * mib // 128))
    machine = spawn(
        [
            sys.executable,
            "-m",
            "hostrefresh.sim.machine",
            "run",
            f"--root={layout.base.parent}",
            f"--node={node}",
            f"--memory-blocks={blocks}",
            "--",
            f"--kubeconfig={cp.kubeconfig}",
            f"--namespace={DEFAULT_NAMESPACE}",
            f"--image-dir={image.parent}",
        ],
        workdir / f"machine-{node}.log",
    )
    try:
        _wait((layout.host(1) / "init.pid").exists, 60, "the first host")
        names = [f"s{vms}x{mib}g{i}" for i in range(vms)]
        for name in names:
            launch_in_host(layout, lab.spec(name, shared=True, memory_mib=mib))

        def aux(name: str, l1: int) -> Path:
            inst = Inventory(layout.run(l1)).load(name).instances["source"]
            return layout.outside(inst.aux_socket, l1)

        async def dirtied() -> None:
            for name in names:
                await GuestVerifier(aux(name, 1), lab.root).wait_dirtied(passes=1, timeout=600)

        asyncio.run(dirtied())
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        obj = {
            "apiVersion": API_VERSION,
            "kind": "HostRefresh",
            "metadata": {"name": f"{node}-hr"},
            "spec": {
                "nodeName": node,
                "target": {"version": "2.0", "kernel": str(image), "checksum": f"sha256:{digest}"},
                "partition": {"cpus": 2, "memory": "1Gi"},
                "handover": {"maxParallel": 8},
            },
        }
        cp.kubectl("apply", "-f", "-", stdin=json.dumps(obj))

        def finished() -> dict[str, Any] | None:
            out = cp.kubectl("get", "hostrefresh", f"{node}-hr", "-o", "json").stdout
            status = json.loads(out).get("status") or {}
            return status if status.get("phase") in TERMINAL else None

        status = _wait(finished, 900, f"{node} refreshed")
        if status["phase"] != Phase.SUCCEEDED:
            raise RuntimeError(f"{node}: {status['phase']}: {status.get('conditions')}")

        async def verified() -> bool:
            reports = [await GuestVerifier(aux(n, 2), lab.root).verify(max_bytes=VERIFY_BYTES) for n in names]
            return all(r.ok for r in reports)

        ok = asyncio.run(verified())
        logs = [*(layout.base / "logs").glob("*agent.log"), *layout.hosts.glob("l1-*/agent.log")]
        records = parse([line for path in logs for line in path.read_text(errors="replace").splitlines()])
        if not any(r["kind"] == "l0" and r.get("call") == "nested_enable" for r in records):
            text = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)
            raise RuntimeError(f"{node}: no timing record of nested_enable in {[str(p) for p in logs]}:\n{text}")
        reported = status["agent"]["vms"]
        figures = per_vm(records)
        if sorted(figures) != sorted(names):
            raise RuntimeError(f"{node}: switch records for {sorted(figures)}, guests {names}")
        downtimes = [f["downtime_ms"] for f in figures.values()]
        totals = [f["total_ms"] for f in figures.values()]
        row: dict[str, Any] = {
            "vms": vms,
            "ram_mib": mib,
            "verified": ok,
            "verified_bytes_per_vm": VERIFY_BYTES,
            "paths": sorted({vm["path"] for vm in reported}),
            "downtime_ms_max": round(max(downtimes), 2),
            "downtime_ms_median": round(statistics.median(downtimes), 2),
            "total_ms_max": round(max(totals), 2),
            "total_ms_median": round(statistics.median(totals), 2),
            "agent_downtime_ms_max": round(max(vm["downtimeMillis"] for vm in reported), 2),
            "qemu_total_ms_max": round(max(vm["totalMillis"] for vm in reported), 2),
            "bytes_max": max(vm["bytesTransferred"] for vm in reported),
            "qemu_downtime_ms_max": max((r.get("downtime_ms") or 0.0) for r in records if r["kind"] == "migration"),
            "resume_lag_ms_max": round(max(r["resume_ms"] for r in records if r["kind"] == "switch"), 2),
            "switch_ms": switch_window(records),
            **split_window(records),
            "agent_nested_seconds": status["agent"]["nestedSeconds"],
        }
        print(json.dumps(row), flush=True)
        return row
    finally:
        stop_all([machine])
        for ram in lab.shm.glob(f"s{vms}x{mib}g*.ram"):
            ram.unlink()  # free the guests' RAM before the next scenario


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], prov: dict[str, Any]) -> str:
    lines = [
        "# Two-host refresh (bench/twohost.py)",
        "",
        provenance_markdown(prov),
        "",
        f"Accel {meta['accel']}. One refresh per row through the real operator and control plane; the old",
        "and the new host are isolated hosts with their own agents. Definitions: docs/benchmarks.md.",
        "",
        "| VMs | RAM MiB | verified (64 MiB sample) | downtime max / median ms | QEMU downtime max ms |"
        " resume lag max ms | total max / median ms | QEMU total max ms | switch ms | nested s |"
        " boot s | handover s | retire s | devirt s | L0 calls s | host boot s | migrations s | overhead s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['vms']} | {r['ram_mib']} | {r['verified']} | {r['downtime_ms_max']} / {r['downtime_ms_median']} |"
            f" {r['qemu_downtime_ms_max']} | {r['resume_lag_ms_max']} |"
            f" {r['total_ms_max']} / {r['total_ms_median']} | {r['qemu_total_ms_max']} | {r['switch_ms']} |"
            f" {r['nested_s']} |"
            f" {r['BootingTarget_s']} | {r['Migrating_s']} | {r['Retiring_s']} | {r['Devirtualizing_s']} |"
            f" {r['l0_calls_s']} | {r['host_boot_s']} | {r['migrations_s']} | {r['overhead_s']} |"
        )
    lines += [
        "",
        "Downtime: the guest paused in the old host (the destination's state-loaded event minus QEMU's downtime",
        "on the sender) to running in the new one (the receiver's `cont` returned): it includes the receiver's",
        "resume lag. Total: the handover's start (the sender about to start the migration) to the guest",
        "running in the new host. QEMU downtime and QEMU total: QEMU's own sender-side figures, which leave",
        "the receiver out (ms resolution). Verified: a 64 MiB sample of each guest's memory pattern.",
        "Switch: first guest paused to last guest running in the new host. Overhead: time inside the nested",
        "window covered by no L0 call, no new-host boot (L1 boot to destinations ready) and no migration:",
        "status writes between steps, the new host's agent noticing that it drives the node, observation.",
        "8 VMs of 4 GiB need 32 GiB of guest RAM: more than this machine has, so 8 VMs stop at 1 GiB.",
        "The test guest never idles (it rewrites its RAM in a loop): 8 guests keep 8 vCPUs busy on this",
        "machine's 2 cores, and QEMU's migration threads and both agents wait for a CPU with them.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="1x256,1x1024,1x4096,8x256,8x1024", help="VMSxMIB, comma-separated")
    parser.add_argument("--out", default="twohost", help="result file stem under bench/results")
    args = parser.parse_args(argv)
    prov = provenance(None if argv is None else [sys.argv[0], *argv])
    scenarios = [tuple(int(x) for x in s.split("x")) for s in args.scenarios.split(",") if s]
    workdir = Path(tempfile.mkdtemp(prefix="hostrefresh-bench-twohost-"))
    lab = GuestLab()
    cp = ControlPlane(workdir / "controlplane")
    cp.start()
    procs = []
    rows: list[dict[str, Any]] = []
    try:
        cp.install_crds(DEFAULT_NAMESPACE)
        image = workdir / "vmlinuz-2.0"
        image.write_bytes(b"simulated host kernel 2.0\n" * 64)
        kube = [f"--kubeconfig={cp.kubeconfig}", f"--namespace={DEFAULT_NAMESPACE}", "--log-format=plain"]
        procs.append(spawn([sys.executable, "-m", "hostrefresh.operator.main", *kube], workdir / "operator.log"))
        for vms, mib in scenarios:
            rows.append(scenario(cp, lab, workdir, image, vms, mib))
    finally:
        stop_all(procs)
        asyncio.run(lab.close())
        cp.stop()
    meta = {"accel": choose_accel()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"provenance": prov, "meta": meta, "rows": rows}, indent=2) + "\n"
    )
    (RESULTS / f"{args.out}.md").write_text(markdown(rows, meta, prov))
    print(markdown(rows, meta, prov))
    return 0


if __name__ == "__main__":
    sys.exit(main())
