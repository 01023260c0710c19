"""What the fault campaign did and found: faults injected, VMs and invariants checked, violations.

Every figure is counted where it happens (a fault rule that fired in the simulated L0, a process
actually killed, an edit the API server actually refused), never assumed from the scenario list.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ScenarioRecord:
    name: str
    fault_class: str
    faults: Counter[str] = field(default_factory=Counter)
    vms_checked: int = 0
    refreshes: int = 0
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    two_host_faults: int = 0  # of the faults, those fired on two-host nodes (machines)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class": self.fault_class,
            "faultsInjected": sum(self.faults.values()),
            "faultsByKind": dict(sorted(self.faults.items())),
            "twoHostFaults": self.two_host_faults,
            "refreshes": self.refreshes,
            "outcomes": dict(sorted(self.outcomes.items())),
            "vmsChecked": self.vms_checked,
            "invariantChecks": self.checks,
            "violations": self.violations,
            "seconds": round(self.seconds, 1),
        }


class Ledger:
    """One scenario's counts; thread-safe (the continuous monitor checks from its own thread).

    ``say`` reports each violation the moment it is seen, past pytest's capture (a campaign stopped
    half-way keeps what it saw); the conftest gives it.
    """

    def __init__(self, record: ScenarioRecord, say: Callable[[str], None] | None = None) -> None:
        self.record = record
        self.say = say
        self._lock = threading.Lock()

    def fault(self, kind: str, n: int = 1, *, two_host: bool = False) -> None:
        if n == 0:
            return  # nothing fired: no kind of fault to list
        with self._lock:
            self.record.faults[kind] += n
            if two_host:
                self.record.two_host_faults += n

    def check(self, ok: bool, what: str) -> bool:
        """Count one invariant check; a failed one is a violation (kept with what was seen)."""
        with self._lock:
            self.record.checks += 1
            if not ok:
                self.record.violations.append(what)
                if self.say is not None:
                    self.say(f"VIOLATION in {self.record.name}: {what[:2000]}")
        return ok

    def vms(self, n: int) -> None:
        with self._lock:
            self.record.vms_checked += n

    def outcome(self, phase: str) -> None:
        with self._lock:
            self.record.refreshes += 1
            self.record.outcomes[phase] += 1


def report(records: list[ScenarioRecord], scope: str, commit: str) -> dict[str, Any]:
    scenarios = [r.to_json() for r in records]
    by_class: Counter[str] = Counter()
    for r in records:
        by_class[r.fault_class] += sum(r.faults.values())
    return {
        "scope": scope,
        "commit": commit,
        "scenarios": len(records),
        "faultsInjected": sum(s["faultsInjected"] for s in scenarios),
        "twoHostFaults": sum(s["twoHostFaults"] for s in scenarios),
        "faultsByClass": dict(sorted(by_class.items())),
        "refreshes": sum(s["refreshes"] for s in scenarios),
        "vmsChecked": sum(s["vmsChecked"] for s in scenarios),
        "invariantChecks": sum(s["invariantChecks"] for s in scenarios),
        "violations": sum(len(s["violations"]) for s in scenarios),
        "seconds": round(sum(r.seconds for r in records), 1),
        "results": scenarios,
    }


def write_report(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
