"""Benchmark: VM handover of the test guest, zero-copy (shared RAM + x-ignore-shared) vs copy migration.

For each RAM size, one guest per path is started, allowed to dirty all of its RAM, then handed over
(and back, `--reps` times for zero-copy). Downtime and total time come from QMP `query-migrate`;
the target QEMU start is measured separately (it can happen before the nested window). Then N VMs are
handed over in parallel. Results go to bench/results/handover.json and .md, with the run's provenance
(bench/provenance.py). Each guest's memory pattern is verified on a 64 MiB sample of its RAM.

    PYTHONPATH=src python bench/handover.py [--sizes 64,256,1024,4096] [--reps 5] [--parallel 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hostrefresh.nodeagent.migrate import HandoverRecord, MigrationPolicy, QemuMigrator, choose_accel
from hostrefresh.sim.guest import GuestVerifier
from hostrefresh.sim.guest.lab import GuestLab
from provenance import markdown as provenance_markdown
from provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"


async def _start(lab: GuestLab, m: QemuMigrator, name: str, mib: int, *, shared: bool, pace: int) -> float:
    """Start a guest and wait until it has written all its RAM once; returns seconds to dirty it."""
    await m.launch(lab.spec(name, shared=shared, memory_mib=mib, append=f"pace={pace}"))
    t0 = time.monotonic()
    await GuestVerifier(m.owner_socket(name), lab.root).wait_dirtied(passes=1, timeout=600)
    return time.monotonic() - t0


async def _verify(lab: GuestLab, m: QemuMigrator, name: str) -> bool:
    report = await GuestVerifier(m.owner_socket(name), lab.root).verify(max_bytes=64 << 20)
    return report.ok


def _row(size: int, path: str, rec: HandoverRecord, start_ms: float | None, ok: bool) -> dict[str, Any]:
    return {
        "ram_mib": size,
        "path": path,
        "outcome": str(rec.outcome),
        "downtime_ms": rec.downtime_ms,
        "total_ms": rec.total_ms,
        "setup_ms": rec.setup_ms,
        "wall_ms": round(rec.wall_ms or 0.0, 1),
        "bytes": rec.bytes_transferred,
        "target_start_ms": None if start_ms is None else round(start_ms, 1),
        "verified": ok,
        "error": rec.error,
    }


async def bench_size(lab: GuestLab, size: int, reps: int, pace: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for shared, path in ((True, "zero-copy"), (False, "copy")):
        m = lab.migrator(MigrationPolicy(timeout_s=600))
        name = f"{'z' if shared else 'c'}{size}"
        dirty_s = await _start(lab, m, name, size, shared=shared, pace=pace)
        for rep in range(reps if shared else 1):
            start_ms = (await m.prepare_targets([name])).get(name)
            [rec] = await m.hand_over([name])
            ok = await _verify(lab, m, name)
            row = _row(size, path, rec, start_ms, ok)
            row["rep"] = rep
            row["dirty_s"] = round(dirty_s, 2)
            rows.append(row)
            print(_fmt(row), flush=True)
            if rep + 1 < reps and shared:
                await m.commit()  # the target becomes the source of the next round
        await m.destroy(name)
    return rows


async def bench_parallel(lab: GuestLab, count: int, size: int, pace: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for shared, path in ((True, "zero-copy"), (False, "copy")):
        m = lab.migrator(MigrationPolicy(parallel=count, timeout_s=600))
        names = [f"p{'z' if shared else 'c'}{i}" for i in range(count)]
        for name in names:
            await m.launch(lab.spec(name, shared=shared, memory_mib=size, append=f"pace={pace}"))
        for name in names:
            await GuestVerifier(m.owner_socket(name), lab.root).wait_dirtied(passes=1, timeout=600)
        prepared = await m.prepare_targets(names)
        t0 = time.monotonic()
        records = await m.hand_over(names)
        wall = (time.monotonic() - t0) * 1000.0
        oks = [await _verify(lab, m, n) for n in names]
        downtimes = [r.downtime_ms or 0.0 for r in records]
        totals = [r.total_ms or 0.0 for r in records]
        row = {
            "vms": count,
            "ram_mib": size,
            "path": path,
            "all_moved": all(r.ok for r in records),
            "all_verified": all(oks),
            "wall_ms": round(wall, 1),
            "downtime_ms_max": max(downtimes),
            "downtime_ms_median": statistics.median(downtimes),
            "total_ms_max": max(totals),
            "total_ms_median": statistics.median(totals),
            "target_start_ms_max": round(max(prepared.values()), 1) if prepared else None,
        }
        rows.append(row)
        print(f"parallel {count}x{size} MiB {path}: {row}", flush=True)
        for name in names:
            await m.destroy(name)
    return rows


def _fmt(row: dict[str, Any]) -> str:
    return (
        f"{row['ram_mib']:>5} MiB {row['path']:<9} downtime {row['downtime_ms']!s:>6} ms  "
        f"total {row['total_ms']!s:>7} ms  wall {row['wall_ms']:>8} ms  bytes {row['bytes']!s:>11}  "
        f"target start {row['target_start_ms']!s:>6} ms  verified {row['verified']}"
    )


def summarize(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    table = []
    for size in sizes:
        zc = [r for r in rows if r["ram_mib"] == size and r["path"] == "zero-copy"]
        cp = [r for r in rows if r["ram_mib"] == size and r["path"] == "copy"]
        if not zc or not cp:
            continue
        zc_total = statistics.median(r["total_ms"] or 0 for r in zc)
        cp_total = cp[0]["total_ms"] or 0
        table.append(
            {
                "ram_mib": size,
                "zc_downtime_ms_median": statistics.median(r["downtime_ms"] or 0 for r in zc),
                "zc_downtime_ms_max": max(r["downtime_ms"] or 0 for r in zc),
                "zc_total_ms_median": zc_total,
                "zc_total_ms_max": max(r["total_ms"] or 0 for r in zc),
                "zc_bytes": zc[0]["bytes"],
                "copy_downtime_ms": cp[0]["downtime_ms"],
                "copy_total_ms": cp_total,
                "copy_bytes": cp[0]["bytes"],
                "speedup_total": round(cp_total / max(zc_total, 1), 1),
                "target_start_ms_median": round(statistics.median(r["target_start_ms"] or 0 for r in zc + cp), 1),
                "verified": all(r["verified"] for r in zc + cp),
            }
        )
    return table


def markdown(env: dict[str, Any], table: list[dict[str, Any]], par: list[dict[str, Any]], prov: dict[str, Any]) -> str:
    lines = [
        "# VM handover benchmark (bench/handover.py)",
        "",
        provenance_markdown(prov),
        "",
        f"- QEMU: {env['qemu']}; accel: {env['accel']}",
        f"- guest: hostrefresh test guest (microvm, multiboot), pace={env['pace']}, all RAM dirtied "
        "before measuring; zero-copy figures are the median/max of "
        f"{env['reps']} handovers; copy: one handover; times from QMP query-migrate (ms resolution): QEMU's",
        "sender-side downtime and total-time (the new QEMU resumes the guest by itself, no agent in between).",
        "Memory verified: a 64 MiB sample of each guest's pattern. Definitions: docs/benchmarks.md.",
        "",
        "| RAM | zero-copy downtime (med/max) | zero-copy total (med/max) | zero-copy bytes | copy downtime "
        "| copy total | copy bytes | copy/zero-copy total | target QEMU start | memory verified |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for t in table:
        lines.append(
            f"| {t['ram_mib']} MiB | {t['zc_downtime_ms_median']}/{t['zc_downtime_ms_max']} ms "
            f"| {t['zc_total_ms_median']}/{t['zc_total_ms_max']} ms | {t['zc_bytes']} "
            f"| {t['copy_downtime_ms']} ms | {t['copy_total_ms']} ms | {t['copy_bytes']} "
            f"| {t['speedup_total']}x | {t['target_start_ms_median']} ms | {'yes' if t['verified'] else 'NO'} |"
        )
    if par:
        lines += [
            "",
            "| parallel | path | wall (all VMs) | downtime med/max | total med/max | all moved & verified |",
            "|---|---|---:|---:|---:|:---:|",
        ]
        for p in par:
            lines.append(
                f"| {p['vms']} x {p['ram_mib']} MiB | {p['path']} | {p['wall_ms']} ms "
                f"| {p['downtime_ms_median']}/{p['downtime_ms_max']} ms | {p['total_ms_median']}/{p['total_ms_max']} ms "
                f"| {'yes' if p['all_moved'] and p['all_verified'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


async def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="64,256,1024,4096")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--parallel-mib", type=int, default=256)
    ap.add_argument("--pace", type=int, default=0, help="guest pause loops per page after the first pass")
    ap.add_argument("--out", type=Path, default=RESULTS / "handover")
    args = ap.parse_args(argv)
    prov = provenance([sys.argv[0], *argv])
    sizes = [int(s) for s in args.sizes.split(",") if s]
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False)
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "qemu": qemu.stdout.splitlines()[0] if qemu.stdout else "?",
        "accel": choose_accel(),
        "pace": args.pace,
        "reps": args.reps,
    }
    lab = GuestLab()
    rows: list[dict[str, Any]] = []
    par: list[dict[str, Any]] = []
    try:
        for size in sizes:
            rows += await bench_size(lab, size, args.reps, args.pace)
        if args.parallel:
            par = await bench_parallel(lab, args.parallel, args.parallel_mib, args.pace)
    finally:
        strays = await lab.close()
        if strays:
            print(f"killed stray QEMUs: {strays}", file=sys.stderr)
    table = summarize(rows, sizes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"provenance": prov, "env": env, "summary": table, "runs": rows, "parallel": par}, indent=2) + "\n"
    )
    md = markdown(env, table, par, prov)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
