"""Per-call cost of libl0 against the simulated L0: C, the thin layer (`hostrefresh.l0._binding`), the friendly layer.

Target (issue 3): a query through Python costs at most 2 us more than from C.
Run from the repo root: ``python bench/l0_calls.py [--iterations N]``.
Writes bench/results/l0_calls.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hostrefresh.l0 import _binding as b
from hostrefresh.l0 import open_l0, sim_create
from provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "l0_calls.json"
TARGET_US = 2.0


def per_call_ns(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Median over repeats of the mean cost per call (median resists the shared CPUs)."""
    for _ in range(min(n, 1000)):
        fn()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - t) / n)
    return statistics.median(runs)


def c_baseline(path: Path, n: int, durable: bool, build: Path) -> dict[str, float]:
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "l0module"), f"BUILD={build}", "bench"], check=True, capture_output=True
    )
    runs = [
        json.loads(
            subprocess.run(
                [str(build / "l0_bench"), str(path), str(n), str(int(durable))],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for _ in range(3)
    ]
    return {k: statistics.median(r[k] for r in runs) for k in ("query_ns", "state_change_ns")}


def python_costs(path: Path, n: int, durable: bool) -> dict[str, float]:
    sim_create(path, cpus=64, memory_bytes=256 << 30, durable=durable)
    with open_l0("sim", path) as l0:
        h = l0._h
        buf = b.new_state()
        query = b.query
        thin_query_ns = per_call_ns(lambda: query(h, buf), n)
        friendly_query_ns = per_call_ns(l0.query, n)

        def uncached() -> object:
            l0._last_raw = b""
            return l0.query()

        friendly_query_uncached_ns = per_call_ns(uncached, n // 4)
        flip = [b.nested_enable, b.nested_disable]
        state = {"i": 0}

        def thin_toggle() -> None:
            state["i"] ^= 1
            flip[state["i"]](h)

        nw = max(1, n // 4)
        if l0.query().nested:
            l0.nested_disable()
        state["i"] = 1
        thin_change_ns = per_call_ns(thin_toggle, nw, repeats=3)
        if l0.query().nested:
            l0.nested_disable()

        def friendly_toggle() -> None:
            if state["i"]:
                l0.nested_disable()
            else:
                l0.nested_enable()
            state["i"] ^= 1

        state["i"] = 0
        friendly_change_ns = per_call_ns(friendly_toggle, nw, repeats=3)
    return {
        "thin_query_ns": thin_query_ns,
        "friendly_query_ns": friendly_query_ns,
        "friendly_query_uncached_ns": friendly_query_uncached_ns,
        "thin_state_change_ns": thin_change_ns,
        "friendly_state_change_ns": friendly_change_ns,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, object] = {
        "provenance": provenance(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "backend": "sim (simulated L0, state file on local disk)",
        "target": f"python query <= C query + {TARGET_US} us",
    }
    with tempfile.TemporaryDirectory() as d:
        build = Path(d) / "build"
        for durable in (False, True):
            # Queries never write, so durability only matters for the state change; the
            # durable run uses fewer iterations because each change fsyncs twice.
            n = args.iterations if not durable else max(200, args.iterations // 50)
            c_runs, py_runs = [], []
            for _ in range(args.rounds):  # alternate C and Python so CPU contention hits both
                c_runs.append(c_baseline(Path(d) / "c.l0", n, durable, build))
                py_runs.append(python_costs(Path(d) / "py.l0", n, durable))
            c = {k: statistics.median(r[k] for r in c_runs) for k in c_runs[0]}
            py = {k: statistics.median(r[k] for r in py_runs) for k in py_runs[0]}
            row: dict[str, object] = {"iterations": n, "rounds": args.rounds}
            row["c_state_change_ns"] = c["state_change_ns"]
            row["thin_state_change_ns"] = py["thin_state_change_ns"]
            row["friendly_state_change_ns"] = py["friendly_state_change_ns"]
            if not durable:
                row["c_query_ns"] = c["query_ns"]
                row["thin_query_ns"] = py["thin_query_ns"]
                row["friendly_query_ns"] = py["friendly_query_ns"]
                row["friendly_query_uncached_ns"] = py["friendly_query_uncached_ns"]
                row["thin_query_overhead_us"] = (py["thin_query_ns"] - c["query_ns"]) / 1000
                row["friendly_query_overhead_us"] = (py["friendly_query_ns"] - c["query_ns"]) / 1000
                row["meets_target"] = row["friendly_query_overhead_us"] <= TARGET_US  # type: ignore[operator]
            results["durable" if durable else "non_durable"] = row
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    modes = ("non_durable", "durable")
    rows = {m: results[m] for m in modes}
    print(f"{'':28}{'non-durable':>16}{'durable(fsync)':>16}")
    for k in rows["non_durable"]:  # type: ignore[attr-defined]
        vals = [rows[m].get(k, "-") for m in modes]  # type: ignore[attr-defined]
        print(f"{k:28}" + "".join(f"{v:>16.2f}" if isinstance(v, float) else f"{v!s:>16}" for v in vals))
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
