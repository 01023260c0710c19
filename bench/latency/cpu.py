"""CPU used by each process while a scenario runs, and the machine's speed just before it.

On 2 shared cores the latencies' tails are set by who holds the CPU; these figures show it, and the
speed loop tells a slow machine from slow code when runs are compared.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_speed(repeats: int = 9, loop: int = 1_000_000) -> dict[str, float]:
    """Time a fixed pure-Python loop (ms; best and median of ``repeats``) while the scenario is idle.

    The cores of this machine are shared with others: the same loop takes up to half again as long
    from one minute to the next. Recorded with each scenario so that runs can be compared fairly.
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sum(range(loop))
        times.append((time.perf_counter() - t0) * 1000)
    return {"best_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1)}


class CpuMeter:
    """CPU used by each process of a scenario (control plane, operator, agent, this bench) between
    ``start`` and ``stop``: shows who saturates the shared cores."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.t0 = 0.0
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.speed: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out["bench"] = cpu_seconds(os.getpid())
        return out

    def start(self) -> None:
        self.speed = machine_speed()
        self.t0, self.before = time.monotonic(), self._sample()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        after = self._sample()
        used = {k: round(after[k] - self.before.get(k, 0.0), 1) for k in after}
        return {
            "wall_s": round(wall, 1),
            "cpu_s": used,
            "cores": {k: round(v / wall, 2) for k, v in used.items()},
            "speed_before": self.speed,
        }
