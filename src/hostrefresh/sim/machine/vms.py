"""Start a VM in a simulated host, as the node's VM runtime would (virt-launcher on a KubeVirt node).

The VM's QEMU must belong to the host that runs it, so it is started from inside that host:
``vm-start`` runs in the host's namespaces (entered with ``nsenter``) and records the VM in the
host's own inventory; ``launch_in_host`` is the machine-side half that enters the driving host.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from hostrefresh.l0 import open_l0
from hostrefresh.nodeagent.migrate import VmSpec
from hostrefresh.nodeagent.migrate.channel import HandoverChannel
from hostrefresh.nodeagent.migrate.twohost import HostMigrator
from hostrefresh.sim.machine.layout import NodeLayout


def driving_host(layout: NodeLayout) -> int:
    """The oldest running L1: the host that owns the node's VMs outside a refresh."""
    with open_l0("sim", layout.l0_state) as l0:
        running = sorted(x.id for x in l0.query().running_l1s)
    return running[0]


def init_pid(layout: NodeLayout, l1: int) -> int:
    return int((layout.host(l1) / "init.pid").read_text())


def launch_in_host(layout: NodeLayout, spec: VmSpec, l1: int | None = None) -> int:
    """Start ``spec`` in host ``l1`` (default: the driving host); returns the L1 it runs in."""
    l1 = driving_host(layout) if l1 is None else l1
    argv = [
        "nsenter",
        f"--target={init_pid(layout, l1)}",
        "--pid",
        "--mount",
        "--uts",
        "--",
        sys.executable,
        "-m",
        "hostrefresh.sim.machine",
        "vm-start",
        f"--node-dir={layout.base}",
        f"--l1={l1}",
        f"--spec={json.dumps(spec.to_dict())}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise RuntimeError(f"could not start {spec.name} in L1 {l1} (exit {done.returncode}): {output}")
    return l1


def vm_start(node_dir: Path, l1: int, spec: VmSpec) -> None:
    """Inside the host: start the VM's QEMU and record it in this host's inventory."""
    layout = NodeLayout(node_dir)

    async def no_peer() -> int | None:
        return None

    migrator = HostMigrator(layout.inside / "vms", HandoverChannel(layout.channel, l1), no_peer)
    asyncio.run(migrator.launch(spec))
