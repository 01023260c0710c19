"""Simulated nodes: a simulated L0 state file, a fake sysfs tree and simulated VMs, under one directory.

The simulated L0 stands in for the real L0 hypervisor (which cannot run on development machines);
everything else is the agent's real code. The VMs are simulated (``SimMigrator``) so that fleets of
hundreds of nodes fit in one agent process, which then plays both hosts of each node in turn (a new
agent object after the retire). Nodes with real QEMU guests in two real hosts are machines of the
machine simulator (``hostrefresh.sim.machine``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from hostrefresh.l0 import open_l0, sim_create
from hostrefresh.nodeagent.images import ImageStore
from hostrefresh.nodeagent.migrate import MigrationPolicy
from hostrefresh.nodeagent.partitioner import Partitioner
from hostrefresh.nodeagent.runtime import NodeRuntime
from hostrefresh.sim.migrator import SimBehaviour, SimMigrator, SimVm
from hostrefresh.sim.sysfs import FakeRules, FakeSysfsIO, build_fake_sysfs

BLOCK_SIZE = 128 << 20


@dataclass(frozen=True)
class SimNodeSpec:
    """Shape of a simulated machine."""

    cpus: int = 8
    memory_blocks: int = 64  # of BLOCK_SIZE: 8 GiB by default
    sim_vms: int = 3  # simulated VMs
    sysfs_timeout_s: float = 5.0


def node_dir(root: Path, node: str) -> Path:
    return root / node


def create_sim_node(root: Path, node: str, spec: SimNodeSpec = SimNodeSpec()) -> Path:
    """Power on a simulated node (idempotent: an existing node keeps its state)."""
    base = node_dir(root, node)
    if (base / "node.json").exists():
        return base
    base.mkdir(parents=True, exist_ok=True)
    sim_create(base / "l0.state", cpus=spec.cpus, memory_bytes=spec.memory_blocks * BLOCK_SIZE, durable=False)
    build_fake_sysfs(
        base / "sysfs", cpus=spec.cpus, memory_blocks=spec.memory_blocks, block_size=BLOCK_SIZE, rules=FakeRules()
    )
    (base / "node.json").write_text(json.dumps(asdict(spec)))
    return base


def open_sim_node(
    root: Path,
    node: str,
    policy: MigrationPolicy | None = None,
    behaviour: SimBehaviour | None = None,
    images: ImageStore | None = None,
) -> NodeRuntime:
    """The runtime of a simulated node created by ``create_sim_node`` (target images from ``images``)."""
    base = node_dir(root, node)
    data = json.loads((base / "node.json").read_text())
    data.pop("qemu", None)  # (nodes created before real-QEMU nodes moved to the machine simulator)
    spec = SimNodeSpec(**data)
    vms = [SimVm(f"{node}-vm{i}") for i in range(spec.sim_vms)]
    migrator = SimMigrator(vms, base / "vms.json", policy, behaviour)
    return NodeRuntime(
        node=node,
        l0=open_l0("sim", base / "l0.state"),
        partitioner=Partitioner(FakeSysfsIO(base / "sysfs"), timeout_s=spec.sysfs_timeout_s),
        migrator=migrator,
        state_dir=base / "agent",
        images=images or ImageStore(),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m hostrefresh.sim.node ROOT NODE``: power on a simulated node (a simulated L0
    state file and a simulated sysfs under ROOT/NODE) for an agent started as ``python -m
    hostrefresh.sim.agent --l0-backend sim --l0-sim-state ROOT/NODE/l0.state --sysfs-root
    ROOT/NODE/sysfs --fake-sysfs``. Prints the directory."""
    parser = argparse.ArgumentParser(prog="python -m hostrefresh.sim.node", description=main.__doc__)
    parser.add_argument("root", type=Path, help="directory of simulated nodes")
    parser.add_argument("node", help="node name")
    parser.add_argument("--cpus", type=int, default=SimNodeSpec.cpus, help="CPUs (default %(default)s)")
    parser.add_argument(
        "--memory-blocks",
        type=int,
        default=SimNodeSpec.memory_blocks,
        help=f"memory in blocks of {BLOCK_SIZE >> 20} MiB (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.cpus < 2 or args.memory_blocks < 2:
        parser.error("--cpus and --memory-blocks must be 2 or more (a host and a partition need one each)")
    print(create_sim_node(args.root, args.node, SimNodeSpec(cpus=args.cpus, memory_blocks=args.memory_blocks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
