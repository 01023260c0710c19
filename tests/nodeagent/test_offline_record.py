"""CPUs and memory offline before a refresh stay offline, and an offline that completes late is handed back.

An administrator's offline CPU or a memory block with hardware errors must survive every path (the
rollback, the devirtualize, an agent that crashed in either); and a hot-unplug that timed out but
completed afterwards must never end offline and unrecorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostrefresh.api import FORWARD_STEPS, HostRefreshSpec, Phase
from hostrefresh.nodeagent.progress import forward_position, rollback_done
from hostrefresh.nodeagent.runtime import NodeRuntime
from hostrefresh.nodeagent.steps import STEPS, StepFailedError, roll_back
from hostrefresh.sim.node import SimNodeSpec, create_sim_node, open_sim_node
from hostrefresh.sim.sysfs import FakeRules, FakeSysfsIO, save_rules

from .images import image_store, target_image

ADMIN_CPU, ADMIN_BLOCK = 5, 7


def _node(tmp_path: Path) -> tuple[Path, HostRefreshSpec]:
    create_sim_node(tmp_path, "n1", SimNodeSpec(cpus=8, memory_blocks=32, sim_vms=2, sysfs_timeout_s=0.3))
    io = FakeSysfsIO(tmp_path / "n1" / "sysfs")
    io.write(f"devices/system/cpu/cpu{ADMIN_CPU}/online", "0")  # the administrator's choices
    io.write(f"devices/system/memory/memory{ADMIN_BLOCK}/state", "offline")
    spec = HostRefreshSpec.model_validate(
        {"nodeName": "n1", "target": target_image(tmp_path), "partition": {"cpus": 2, "memory": "1Gi"}}
    )
    return tmp_path, spec


def _runtime(root: Path) -> NodeRuntime:
    """A fresh agent's runtime (as after a crash), driving refresh hr-1."""
    rt = open_sim_node(root, "n1", images=image_store(root))
    rt.use_refresh("hr-1/uid-1")
    return rt


def _admin_offline(root: Path) -> tuple[bool, bool]:
    io = FakeSysfsIO(root / "n1" / "sysfs")
    cpu = io.read(f"devices/system/cpu/cpu{ADMIN_CPU}/online") == "0"
    block = io.read(f"devices/system/memory/memory{ADMIN_BLOCK}/state") == "offline"
    return cpu, block


def test_offline_before_the_refresh_is_not_taken_and_preflight_runs(tmp_path: Path) -> None:
    root, spec = _node(tmp_path)
    rt = _runtime(root)
    obs = asyncio.run(rt.observe(asyncio.run(rt.image(spec.target)).sha256))
    assert not obs.resources_taken
    assert forward_position(obs) == Phase.PREFLIGHT


def test_rollback_repeated_by_a_restarted_agent_leaves_the_administrators_offline_alone(tmp_path: Path) -> None:
    root, spec = _node(tmp_path)

    async def run() -> None:
        rt = _runtime(root)
        sha = (await rt.image(spec.target)).sha256
        for step in FORWARD_STEPS[: FORWARD_STEPS.index(Phase.BOOTING_TARGET) + 1]:
            await STEPS[step](rt, spec, await rt.observe(sha))
        await roll_back(rt, await rt.observe(sha))
        # the agent crashes before it reports the rollback done; its successor looks again
        again = _runtime(root)
        obs = await again.observe(sha)
        assert rollback_done(obs), obs
        await roll_back(again, obs)

    asyncio.run(run())
    assert _admin_offline(root) == (True, True)


def test_devirtualize_repeated_by_a_restarted_agent_leaves_the_administrators_offline_alone(tmp_path: Path) -> None:
    root, spec = _node(tmp_path)

    async def run() -> None:
        rt = _runtime(root)
        sha = (await rt.image(spec.target)).sha256
        for step in FORWARD_STEPS:
            await STEPS[step](rt, spec, await rt.observe(sha))
        again = _runtime(root)  # a restart after Verifying, before its report
        obs = await again.observe(sha)
        assert forward_position(obs) == Phase.VERIFYING and not obs.resources_taken
        await STEPS[Phase.VERIFYING](again, spec, obs)

    asyncio.run(run())
    assert _admin_offline(root) == (True, True)


def test_a_late_offline_is_noticed_and_handed_back(tmp_path: Path) -> None:
    root, spec = _node(tmp_path)
    sysfs = root / "n1" / "sysfs"
    late = "devices/system/memory/memory31/state"  # the first block the partitioner tries
    save_rules(sysfs, FakeRules(late=[late], hang_seconds=1.0))

    async def run() -> None:
        rt = _runtime(root)
        sha = (await rt.image(spec.target)).sha256
        await STEPS[Phase.PARTITIONING](rt, spec, await rt.observe(sha))  # memory31 times out, others taken
        obs = await rt.observe(sha)
        assert late in obs.writes_pending
        try:
            await roll_back(rt, obs)
            raise AssertionError("a rollback with an offline still in the kernel must not finish")
        except StepFailedError as exc:
            assert exc.reason == "HotPlugPending"
        assert not rollback_done(await rt.observe(sha))
        await asyncio.sleep(1.2)  # the kernel completes the offline after all
        obs = await rt.observe(sha)
        assert not obs.writes_pending and obs.resources_taken  # noticed: memory31 is offline, not recorded before
        await roll_back(rt, obs)
        assert rollback_done(await rt.observe(sha))

    asyncio.run(run())
    assert FakeSysfsIO(sysfs).read(late) == "online"
    assert _admin_offline(root) == (True, True)


def _offline_cpus(root: Path) -> set[int]:
    io = FakeSysfsIO(root / "n1" / "sysfs")
    return {n for n in range(1, 8) if io.read(f"devices/system/cpu/cpu{n}/online") == "0"}  # CPU0 has no switch


def test_what_an_unfinished_refresh_left_offline_is_given_back_by_the_next(tmp_path: Path) -> None:
    """Refresh hr-1 took its partition and was then declared Failed and deleted before its agent
    finished: the next refresh must not record hr-1's CPUs as "offline before" and keep them forever."""
    root, spec = _node(tmp_path)

    async def run() -> None:
        first = _runtime(root)
        sha = (await first.image(spec.target)).sha256
        await STEPS[Phase.PARTITIONING](first, spec, await first.observe(sha))
        state = await asyncio.to_thread(first.l0.query)
        for part in state.partitions:  # hr-1's agent got as far as destroying its partition, no further
            if part.parent is not None:
                first.l0.partition_destroy(part.id)
        assert _offline_cpus(root) - {ADMIN_CPU}, "hr-1 took CPUs"
        second = open_sim_node(root, "n1", images=image_store(root))
        second.use_refresh("hr-2/uid-2")
        obs = await second.observe(sha)
        assert forward_position(obs) == Phase.PREFLIGHT
        await STEPS[Phase.PREFLIGHT](second, spec, obs)
        outcome = await STEPS[Phase.PARTITIONING](second, spec, await second.observe(sha))
        assert "hr-1/uid-1" in outcome.message
        await roll_back(second, await second.observe(sha))
        assert rollback_done(await second.observe(sha))

    asyncio.run(run())
    assert _offline_cpus(root) == {ADMIN_CPU}
    assert _admin_offline(root) == (True, True)


def test_a_refresh_that_ended_binds_no_later_one(tmp_path: Path) -> None:
    """After a clean end, what is offline is the administrator's again (offlined after that refresh)."""
    root, spec = _node(tmp_path)

    async def run() -> None:
        first = _runtime(root)
        sha = (await first.image(spec.target)).sha256
        await STEPS[Phase.PARTITIONING](first, spec, await first.observe(sha))
        await roll_back(first, await first.observe(sha))
        FakeSysfsIO(root / "n1" / "sysfs").write("devices/system/cpu/cpu6/online", "0")  # the administrator, later
        second = open_sim_node(root, "n1", images=image_store(root))
        second.use_refresh("hr-2/uid-2")
        outcome = await STEPS[Phase.PARTITIONING](second, spec, await second.observe(sha))
        assert "never ended" not in outcome.message
        await roll_back(second, await second.observe(sha))

    asyncio.run(run())
    assert _offline_cpus(root) == {ADMIN_CPU, 6}
