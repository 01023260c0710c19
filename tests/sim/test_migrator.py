"""The simulated migrator: same interface, resumable from its state file, cheap at fleet scale."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hostrefresh.nodeagent.migrate import HandoverPath, MigrationPolicy, Outcome, VmLocation
from hostrefresh.sim.migrator import SimBehaviour, SimMigrator, SimVm


async def test_sim_paths_failures_and_idempotency(tmp_path: Path) -> None:
    vms = [SimVm("a"), SimVm("b", shared_memory=False, memory_mib=64), SimVm("c")]
    state = tmp_path / "node.json"
    sim = SimMigrator(vms, state, behaviour=SimBehaviour(fail_names={"c"}, copy_s_per_gib=0.01))
    records = {r.name: r for r in await sim.hand_over()}
    assert records["a"].path is HandoverPath.ZERO_COPY and records["a"].outcome is Outcome.MOVED
    assert records["b"].path is HandoverPath.COPY
    assert records["c"].outcome is Outcome.FAILED
    restarted = SimMigrator(vms, state)  # a new agent observes what the old one did
    assert await restarted.locate() == {"a": VmLocation.TARGET, "b": VmLocation.TARGET, "c": VmLocation.SOURCE}
    again = {r.name: r.outcome for r in await restarted.hand_over(["a", "b"])}
    assert again == {"a": Outcome.ALREADY, "b": Outcome.ALREADY}
    back = await restarted.hand_back()
    assert {r.name: r.outcome for r in back} == {"a": Outcome.MOVED, "b": Outcome.MOVED, "c": Outcome.ALREADY}
    no_copy = SimMigrator(vms, policy=MigrationPolicy(copy_fallback=False))
    assert {r.name: r.outcome for r in await no_copy.hand_over()}["b"] is Outcome.FAILED


async def test_a_thousand_simulated_nodes_hand_over_quickly() -> None:
    nodes = [
        SimMigrator([SimVm(f"vm{i}") for i in range(3)], behaviour=SimBehaviour(zero_copy_s=0.001)) for _ in range(1000)
    ]
    t0 = time.monotonic()
    results = await asyncio.gather(*(n.hand_over() for n in nodes))
    assert all(r.outcome is Outcome.MOVED for rs in results for r in rs)
    assert time.monotonic() - t0 < 10
