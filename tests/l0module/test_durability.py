"""The simulated L0's state file under SIGKILL and under concurrent callers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostrefresh.l0 import Call, FaultRule, Status, open_l0, sim_create

from .conftest import GiB

WORKER = str(Path(__file__).with_name("sim_worker.py"))


def spawn(path: Path, n: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, WORKER, str(path), str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
def test_sigkill_mid_update_never_tears_the_state(sim_path: Path) -> None:
    """Kill a writer at random instants (many inside the half-written temp file): state stays valid.

    Each successful toggle adds one to generation and flips nested, so a valid
    state has nested == generation odd; the generation never goes backwards.
    """
    sim_create(sim_path, cpus=4, memory_bytes=GiB, durable=True)
    rng = random.Random(1234)
    last_gen = 0
    kills = 80
    full = sim_path.stat().st_size
    tmp = sim_path.with_name(sim_path.name + ".tmp")
    torn_tmp = 0  # kills that left a half-written temp file behind
    slow = {"HOSTREFRESH_L0_SIM_SLOW_WRITE_US": "300"}  # widen the mid-write window
    with open_l0("sim", sim_path) as observer:
        for _ in range(kills):
            proc = spawn(sim_path, 0, slow)
            time.sleep(rng.uniform(0.0, 0.03))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
            torn_tmp += tmp.exists() and tmp.stat().st_size < full
            state = observer.query()  # CorruptStateError here would fail the test
            assert state.nested == (state.generation % 2 == 1)
            assert state.generation >= last_gen
            last_gen = state.generation
    assert last_gen > kills  # the writers really were writing when killed
    assert torn_tmp >= 5, f"only {torn_tmp} of {kills} kills landed mid-write"


@pytest.mark.slow
def test_concurrent_processes_lose_no_update(sim_path: Path) -> None:
    """Several processes read-modify-write one state file: every success is counted once."""
    sim_create(sim_path, cpus=4, memory_bytes=GiB, durable=False)
    with open_l0("sim", sim_path) as l0:
        l0.sim_inject_fault(FaultRule(call=Call.QUERY, status=Status.OK))  # counts queries in the file
        n_procs, n_iter = 4, 300
        procs = [spawn(sim_path, n_iter) for _ in range(n_procs)]
        ok = queries = 0
        for p in procs:
            out, _ = p.communicate(timeout=300)
            assert p.returncode == 0
            a, b = map(int, out.split())
            ok += a
            queries += b
        state = l0.query()
        (rule,) = l0.sim_faults()
    assert queries == n_procs * n_iter
    assert state.generation == ok
    assert state.nested == (ok % 2 == 1)
    assert rule.hits == queries + 1  # +1: the query above
    assert ok > n_iter  # the processes really did interleave updates
