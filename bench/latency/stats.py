"""Statistics: every latency is reported as the same summary (ms), so runs and files compare."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values_s: Iterable[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 1),
        "p90_ms": round(percentile(ms, 0.9), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
        "min_ms": round(min(ms), 1),
    }
