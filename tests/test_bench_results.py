"""Every recorded figure says where it comes from: each JSON file in bench/results has provenance.

Provenance (bench/provenance.py, docs/benchmarks.md): the commit that ran (full sha, ``-dirty`` when
the tree differed), the date (ISO 8601, UTC), the machine (CPU model, cores, memory, kernel,
accelerator) and the command. Files recorded before the benchmarks wrote it are listed in ``STALE``
with the command that regenerates them; nobody writes provenance into them by hand. The list only
shrinks: a listed file that has provenance fails too, so that its entry is removed once it is
regenerated, and a file neither provenanced nor listed fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

_PREDATES = "predates provenance; regenerate with "
#: Result files recorded before provenance, with how to regenerate each. Remove an entry once its file is.
STALE: dict[str, str] = {
    "faults.json": _PREDATES + "`make faults` (the whole campaign, about 70 minutes)",
    "fleet_scale.json": _PREDATES
    + "`python bench/fleet_scale.py --nodes 1000 --max-unavailable 10% --vms 2 --boot-seconds 20`",
    "make_test_times.json": _PREDATES + "`scripts/fresh-run.sh` (cold; `scripts/fresh-run.sh CACHE_DIR` warm), "
    "recorded by hand with the provenance of bench/provenance.py: no script writes this file",
    "operator_core_ab.json": _PREDATES + "the A/B of issue 13 again: `python bench/operator_latency.py --runs 1` "
    "and `python bench/fleet_scale.py`, alternating, on the code at 6b5895c and after it, assembled by hand "
    "(`bench/compare.py` writes only the Markdown table)",
    "operator_latency.json": _PREDATES + "`python bench/operator_latency.py --runs 1` (twice, as recorded)",
}


def _provenance_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_provenance", ROOT / "bench" / "provenance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROVENANCE = _provenance_module()


def missing(doc: Any) -> list[str]:
    """What the document's provenance lacks, with the date checked for ISO 8601 in UTC."""
    out: list[str] = list(PROVENANCE.missing(doc))
    if not out:
        prov = doc[PROVENANCE.KEY]
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(prov["date"])):
            out.append(f"date {prov['date']!r} is not ISO 8601 UTC")
        if not re.fullmatch(r"[0-9a-f]{40}(-dirty)?", str(prov["commit"])):
            out.append(f"commit {prov['commit']!r} is not a full sha")
    return out


def _files() -> list[str]:
    return sorted(p.name for p in RESULTS.glob("*.json"))


@pytest.mark.parametrize("name", _files())
def test_result_file_has_provenance_or_is_listed_stale(name: str) -> None:
    doc = json.loads((RESULTS / name).read_text())
    lacks = missing(doc)
    if name in STALE:
        assert lacks, f"bench/results/{name} has provenance now: remove it from STALE in {Path(__file__).name}"
        assert STALE[name].startswith(_PREDATES)
    else:
        assert not lacks, (
            f"bench/results/{name} lacks provenance ({', '.join(lacks)}): record it with bench/provenance.py"
        )


def test_stale_names_only_existing_files() -> None:
    assert sorted(set(STALE) - set(_files())) == []


def test_missing_finds_each_absent_field() -> None:
    whole = {
        "provenance": {
            "commit": "0" * 40,
            "date": "2026-12-08T10:15:00Z",
            "machine": {"cpu_model": "x", "cores": 2, "memory_gib": 23.5, "kernel": "6.1", "accelerator": "kvm"},
            "command": "python bench/x.py",
        }
    }
    assert missing(whole) == []
    assert missing({}) == ["provenance"]
    for field in ("commit", "date", "command", "machine"):
        doc = json.loads(json.dumps(whole))
        del doc["provenance"][field]
        assert missing(doc) == [field]
    for field in ("cpu_model", "cores", "memory_gib", "kernel", "accelerator"):
        doc = json.loads(json.dumps(whole))
        del doc["provenance"]["machine"][field]
        assert missing(doc) == [f"machine.{field}"]
    doc = json.loads(json.dumps(whole))
    doc["provenance"]["date"] = "Mon Nov 30 04:00:55 2026"
    assert missing(doc) == ["date 'Mon Nov 30 04:00:55 2026' is not ISO 8601 UTC"]
    doc["provenance"]["date"] = "2026-12-08T10:15:00Z"
    doc["provenance"]["commit"] = "5ad5eeb"
    assert missing(doc) == ["commit '5ad5eeb' is not a full sha"]


def test_provenance_of_this_checkout_is_complete() -> None:
    """What the benchmarks record passes the check above (run here, in this checkout)."""
    prov = PROVENANCE.provenance(["bench/twohost.py", "--scenarios", "1x256"])
    assert missing({"provenance": prov}) == []
    assert prov["command"] == "python bench/twohost.py --scenarios 1x256"
    assert prov["machine"]["accelerator"] in ("kvm", "tcg")
    assert PROVENANCE.markdown(prov).startswith(f"Recorded {prov['date']} at commit `{prov['commit']}`")


def test_twohost_figures_run_from_handover_start_to_guest_running() -> None:
    """bench/twohost.py's per-VM figures from the agents' timing records (docs/benchmarks.md): total runs
    from the sender starting the migration to the receiver's `cont`, so it is never shorter than the
    downtime, which runs from the guest paused (state loaded minus QEMU's downtime) to that same `cont`."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        twohost = importlib.import_module("twohost")
    finally:
        sys.path.remove(str(ROOT / "bench"))
    t = 1_700_000_000.0
    records = [
        {"kind": "migration", "vm": "a", "start": t, "end": t + 0.004, "downtime_ms": 1.0, "total_ms": 3.0},
        {"kind": "migration", "vm": "b", "start": t, "end": t + 0.005, "downtime_ms": 2.0, "total_ms": 4.0},
        # loaded at +3 ms, cont returned at +9 ms, the receiver's record written at +12 ms
        {"kind": "switch", "vm": "a", "start": t + 0.003, "end": t + 0.012, "running": t + 0.009, "resume_ms": 5.0},
        # an older record without "running": its end stands in
        {"kind": "switch", "vm": "b", "start": t + 0.006, "end": t + 0.010, "resume_ms": 3.0},
    ]
    figures = twohost.per_vm(records)
    assert figures == {
        "a": {"downtime_ms": 7.0, "total_ms": 9.0},  # 9 - (3 - 1); 9 - 0
        "b": {"downtime_ms": 6.0, "total_ms": 10.0},  # 10 - (6 - 2); 10 - 0
    }
    assert all(f["total_ms"] >= f["downtime_ms"] for f in figures.values())
    assert twohost.switch_window(records) == 8.0  # first paused (+2 ms, a) to last running (+10 ms, b)
    assert twohost.switch_window([]) is None
