"""The agent's steps on a simulated node, without Kubernetes: each runs twice with the same result,
the position is always derived from observed state, and rollback from any step restores the node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hostrefresh.api import FORWARD_STEPS, HostRefreshSpec, Phase
from hostrefresh.api.phases import RETIRE_REFUSED
from hostrefresh.nodeagent.migrate import VmLocation
from hostrefresh.nodeagent.progress import forward_position, rollback_done
from hostrefresh.nodeagent.runtime import NodeRuntime
from hostrefresh.nodeagent.steps import STEPS, StepFailedError, roll_back
from hostrefresh.sim.node import SimNodeSpec, create_sim_node, open_sim_node

from .images import image_store, target_image


def _node(tmp_path: Path) -> tuple[NodeRuntime, HostRefreshSpec, bytes]:
    create_sim_node(tmp_path, "n1", SimNodeSpec(cpus=8, memory_blocks=32, sim_vms=3))
    rt = open_sim_node(tmp_path, "n1", images=image_store(tmp_path))
    spec = HostRefreshSpec.model_validate(
        {"nodeName": "n1", "target": target_image(tmp_path), "partition": {"cpus": 2, "memory": "1Gi"}}
    )
    return rt, spec, asyncio.run(rt.image(spec.target)).sha256


async def _fingerprint(rt: NodeRuntime, sha: bytes) -> tuple[object, ...]:
    obs = await rt.observe(sha)
    state = obs.l0
    return (
        state.nested,
        state.partitions,
        state.l1s,
        state.grants,
        obs.offline_cpus,
        obs.offline_blocks,
        tuple(sorted(obs.vms.items())),
    )


def test_each_step_twice_converges_and_the_position_follows(tmp_path: Path) -> None:
    rt, spec, sha = _node(tmp_path)

    async def run() -> list[Phase]:
        seen: list[Phase] = []
        preflight_done = False
        for _ in range(len(FORWARD_STEPS) + 2):
            obs = await rt.observe(sha)
            position = forward_position(obs)
            if position == Phase.PREFLIGHT and preflight_done:
                position = Phase.PARTITIONING
            if position == Phase.VERIFYING and Phase.VERIFYING in seen:
                break
            seen.append(position)
            await STEPS[position](rt, spec, obs)
            after_once = await _fingerprint(rt, sha)
            await STEPS[position](rt, spec, await rt.observe(sha))  # the same step again
            assert await _fingerprint(rt, sha) == after_once, f"{position} is not idempotent"
            preflight_done = True
        return seen

    assert asyncio.run(run()) == list(FORWARD_STEPS)
    obs = asyncio.run(rt.observe(sha))
    assert not obs.l0.nested and len(obs.running) == 1 and obs.target_l1 is not None
    assert not obs.resources_taken


ROLLBACK_AFTER = [Phase.PARTITIONING, Phase.NESTED_ENABLING, Phase.BOOTING_TARGET, Phase.MIGRATING]


@pytest.mark.parametrize("last", ROLLBACK_AFTER, ids=[str(p) for p in ROLLBACK_AFTER])
def test_rollback_twice_from_any_step_restores_the_node(tmp_path: Path, last: Phase) -> None:
    rt, spec, sha = _node(tmp_path)
    before = asyncio.run(rt.observe(sha))

    async def run() -> None:
        for step in FORWARD_STEPS[: FORWARD_STEPS.index(last) + 1]:
            await STEPS[step](rt, spec, await rt.observe(sha))
        await roll_back(rt, await rt.observe(sha))
        await roll_back(rt, await rt.observe(sha))  # idempotent

    asyncio.run(run())
    after = asyncio.run(rt.observe(sha))
    assert rollback_done(after)
    assert [x.id for x in after.running] == [x.id for x in before.running] == [1]
    assert set(after.vms.values()) == {VmLocation.SOURCE}
    assert after.l0.partitions[0].cpus == before.l0.partitions[0].cpus


def test_retire_is_refused_for_a_vm_not_on_the_new_host(tmp_path: Path) -> None:
    """The retire takes the old host with every process in it: a VM left there is named, not lost."""
    rt, spec, sha = _node(tmp_path)

    async def run() -> str:
        for phase in FORWARD_STEPS[: FORWARD_STEPS.index(Phase.RETIRING)]:
            await STEPS[phase](rt, spec, await rt.observe(sha))
        assert forward_position(await rt.observe(sha)) == Phase.RETIRING
        await rt.migrator.hand_back(["n1-vm1"])  # one VM is back on the old host when the retire comes
        with pytest.raises(StepFailedError) as failed:
            await STEPS[Phase.RETIRING](rt, spec, await rt.observe(sha))
        assert failed.value.reason == RETIRE_REFUSED
        obs = await rt.observe(sha)
        assert obs.source_l1 is not None, "the old host was retired with a VM on it"
        return str(failed.value)

    assert "n1-vm1" in asyncio.run(run())


@pytest.mark.parametrize(
    ("memory", "blocks", "rounded"),
    [("1Gi", 8, False), ("200Mi", 2, True), ("1G", 8, True)],
)
def test_partitioning_says_when_it_rounded_the_memory_up_to_whole_blocks(
    tmp_path: Path, memory: str, blocks: int, rounded: bool
) -> None:
    rt, spec, sha = _node(tmp_path)
    spec = spec.model_copy(update={"partition": spec.partition.model_copy(update={"memory": memory})})
    obs = asyncio.run(rt.observe(sha))
    outcome = asyncio.run(STEPS[Phase.PARTITIONING](rt, spec, obs))
    assert f"{blocks * 128} MiB created" in outcome.message, outcome.message
    note = f"spec.partition.memory {memory} rounded up to {blocks} whole memory blocks of 128 MiB"
    assert (note in outcome.message) is rounded, outcome.message


def test_preflight_refuses_a_partition_that_leaves_the_old_host_no_room_for_its_vms(tmp_path: Path) -> None:
    """32 blocks of 128 MiB, 3 VMs of 256 MiB and a 512 MiB reserve: the old host keeps 10 blocks."""
    rt, spec, sha = _node(tmp_path)
    greedy = spec.model_copy(update={"partition": spec.partition.model_copy(update={"memory": "3Gi"})})  # 24 blocks
    obs = asyncio.run(rt.observe(sha))
    with pytest.raises(StepFailedError) as info:
        asyncio.run(STEPS[Phase.PREFLIGHT](rt, greedy, obs))
    assert info.value.reason == "PartitionInfeasible"
    assert "ask for at most 2816Mi" in str(info.value), info.value
    fits = spec.model_copy(update={"partition": spec.partition.model_copy(update={"memory": "2816Mi"})})
    assert "preflight passed" in asyncio.run(STEPS[Phase.PREFLIGHT](rt, fits, obs)).message
