"""``hostrefresh-agent``: the node agent that executes the node-local refresh steps.

On a real node (DaemonSet pod): ``--node $NODE_NAME`` with the real L0 (vmcall), /sys, and QEMU VMs
under ``--vm-runtime``; with ``--l1-id`` it is the agent of one of the node's two hosts during a
refresh (see docs/hosts.md). The parts of a node (its sysfs, its migrator, the list of nodes) come in
through ``main(nodes=...)``, so that ``python -m hostrefresh.sim.agent`` can run this same agent with
simulated parts (a fake sysfs tree, or many simulated nodes in one process) without this package
importing any of them.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from prometheus_client import start_http_server

from hostrefresh import eventloop, flags
from hostrefresh.api.common import AGENT_LEASE_SECONDS, AGENT_SILENCE_DEFAULT_SECONDS, HEARTBEATS_PER_LEASE
from hostrefresh.health import serve_health
from hostrefresh.kube.client import async_client
from hostrefresh.kube.names import AGENT, DEFAULT_NAMESPACE
from hostrefresh.l0 import open_l0
from hostrefresh.nodeagent.agent import REPORT_RUNNING_AFTER
from hostrefresh.nodeagent.host import AgentHost
from hostrefresh.nodeagent.images import DEFAULT_IMAGE_DIRS, DEFAULT_KERNEL_PARAMS, DEFAULT_MAX_IMAGE_BYTES, ImageStore
from hostrefresh.nodeagent.migrate import QemuMigrator
from hostrefresh.nodeagent.migrate.placement import HostCgroup, valid_cgroup_name
from hostrefresh.nodeagent.migrate.process import place_vms_in
from hostrefresh.nodeagent.migrate.twohost import HostMigrator
from hostrefresh.nodeagent.partitioner import Partitioner
from hostrefresh.nodeagent.runtime import NodeRuntime, host_runtime
from hostrefresh.nodeagent.sysfs import RealSysfsIO, SysfsIO

#: The longest heartbeat Lease: its renewals (every third of it) must fit twice into the default
#: silence limit of a refresh (timeouts.agentSilenceSeconds, 60 s), or that default would roll back
#: refreshes of healthy agents.
MAX_LEASE_SECONDS = AGENT_SILENCE_DEFAULT_SECONDS * HEARTBEATS_PER_LEASE // 2

#: A sysfs implementation over a root directory (the kernel's, or a stand-in's).
SysfsFactory = Callable[[Path], SysfsIO]

#: The runtimes of the nodes an agent process serves, from its flags and its one image store.
NodeRuntimes = Callable[[argparse.Namespace, ImageStore], list[NodeRuntime]]


def build_parser(prog: str = AGENT, description: str | None = __doc__) -> argparse.ArgumentParser:
    """Every flag of the agent; a wrapper (the simulator's agent) adds its own before parsing."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--kubeconfig", type=Path, default=None, help="kubeconfig (default: in-cluster or $KUBECONFIG)")
    parser.add_argument(
        "--namespace",
        type=flags.namespace,
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        help=f"namespace of the heartbeat Leases (default $POD_NAMESPACE or {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--node",
        type=flags.node_name,
        default=os.environ.get("NODE_NAME") or None,
        help="this node's name (default $NODE_NAME)",
    )
    parser.add_argument("--l0-backend", choices=["vmcall", "sim"], default="vmcall", help="how to reach the L0")
    parser.add_argument(
        "--l0-sim-state", type=Path, default=None, help="simulated L0 state file (with --l0-backend sim)"
    )
    parser.add_argument("--sysfs-root", type=Path, default=Path("/sys"), help="sysfs root (default /sys)")
    parser.add_argument(
        "--vm-runtime",
        type=Path,
        default=Path("/var/lib/hostrefresh/vms"),
        help="directory of this host's QEMU VM records, sockets and logs",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/hostrefresh/agent"),
        help="node-local state that survives restarts (baseline of offline resources)",
    )
    parser.add_argument(
        "--l1-id",
        type=flags.whole(1),
        default=os.environ.get("HOSTREFRESH_L1_ID") or None,
        help="the L0's id of the host this agent runs in (default $HOSTREFRESH_L1_ID); set, the agent is one "
        "of two hosts' agents: it drives the refresh only while its host is the node's oldest running L1",
    )
    parser.add_argument(
        "--channel-dir",
        type=Path,
        default=Path("/run/hostrefresh/channel"),
        help="the L0's handover channel between the two hosts of the node (with --l1-id)",
    )
    parser.add_argument(
        "--handoff-dir",
        type=Path,
        default=Path("/run/hostrefresh/handoff"),
        help="the L0's handoff area that outlives a host: the refresh's record of what was offline before "
        "(with --l1-id)",
    )
    parser.add_argument(
        "--nice",
        type=flags.whole(-20, 19),
        default=-10,
        help="with --l1-id: the agent's CPU priority (nice value, default %(default)s). A guest's pause lasts until "
        "this agent resumes it in the new host, so it must not wait for a CPU behind the guests' vCPUs",
    )
    parser.add_argument(
        "--image-dir",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="a directory target images may come from (repeatable; default "
        f"{', '.join(map(str, DEFAULT_IMAGE_DIRS))}). A HostRefresh whose kernel or initrd resolves, symlinks "
        "followed, to anywhere else is refused",
    )
    parser.add_argument(
        "--kernel-param",
        action="append",
        default=None,
        metavar="NAME",
        help="a kernel parameter a refresh may give the new host in spec.target.cmdline, by name (repeatable; "
        f"default {' '.join(DEFAULT_KERNEL_PARAMS)}; an empty NAME allows none)",
    )
    parser.add_argument(
        "--max-image-bytes",
        type=int,
        default=DEFAULT_MAX_IMAGE_BYTES,
        metavar="BYTES",
        help="largest kernel or initrd the agent reads (default %(default)s); larger files, devices, FIFOs and "
        "directories are refused before they are read",
    )
    parser.add_argument(
        "--vm-cgroup",
        default="",
        metavar="NAME",
        help="move each QEMU the agent starts into the host's cgroup NAME (under /proc/1/root/sys/fs/cgroup, "
        "in every hierarchy), so that VMs outlive the agent's pod; empty (the default): leave them in the "
        "agent's cgroup, as for an agent run by the host's init system",
    )
    parser.add_argument(
        "--lease-seconds",
        type=flags.whole(1, MAX_LEASE_SECONDS),
        default=AGENT_LEASE_SECONDS,
        help=f"heartbeat Lease duration, renewed every third of it (1-{MAX_LEASE_SECONDS}, default %(default)s); "
        "a refresh's timeouts.agentSilenceSeconds should span at least two renewals",
    )
    parser.add_argument(
        "--retry-seconds",
        type=flags.seconds(0.0),
        default=1.0,
        help="base backoff between retries of a step, more than 0 (default %(default)s)",
    )
    parser.add_argument(
        "--report-running-after",
        type=flags.non_negative,
        default=REPORT_RUNNING_AFTER,
        metavar="SECONDS",
        help="report a step Running once it has run this long; quicker steps are reported with the next "
        "write (default %(default)s)",
    )
    parser.add_argument("--metrics-port", type=flags.port, default=0, help="serve Prometheus metrics here (0: off)")
    parser.add_argument("--health-port", type=flags.port, default=0, help="serve /healthz here (0: off)")
    parser.add_argument("--identity", default=socket.gethostname() + f"-{os.getpid()}")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, *, one_node: bool = True) -> None:
    """What no single flag's type can see: flags that contradict each other, paths that must exist.

    Runs before the agent touches anything (no node, state directory or Lease is created). With
    ``one_node=False`` the caller's ``NodeRuntimes`` makes the nodes from flags of its own (the
    simulator's agent), so this process's one node (``--node``, ``--sysfs-root``) is neither
    required nor checked.
    """
    if one_node and not args.node:
        parser.error("--node (or $NODE_NAME) is required")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        parser.error(f"--kubeconfig {args.kubeconfig}: no such file; give the path of a kubeconfig, or leave it out")
    if args.l0_sim_state is not None and args.l0_backend != "sim":
        parser.error("--l0-sim-state is the simulated L0's state file: it needs --l0-backend sim")
    if args.l0_sim_state is not None and not args.l0_sim_state.is_file():
        parser.error(f"--l0-sim-state {args.l0_sim_state}: no such file; power the simulated L0 on first")
    if one_node and not args.sysfs_root.is_dir():
        parser.error(f"--sysfs-root {args.sysfs_root} is not a directory; give the sysfs root")
    if args.l1_id is not None:
        for flag, path in (("--channel-dir", args.channel_dir), ("--handoff-dir", args.handoff_dir)):
            if not path.is_dir():
                parser.error(f"{flag} {path} is not a directory; with --l1-id the L0 provides it to both hosts")
    if not args.identity.strip():
        parser.error("--identity is empty: name this agent instance, e.g. after its pod")
    flags.distinct_ports(parser, args.metrics_port, args.health_port)
    if not -20 <= args.nice <= 19:
        parser.error(f"--nice must be between -20 and 19, not {args.nice}")
    if args.image_dir is None:
        args.image_dir = list(DEFAULT_IMAGE_DIRS)
    if args.kernel_param is None:
        args.kernel_param = list(DEFAULT_KERNEL_PARAMS)
    args.kernel_param = [p for p in args.kernel_param if p]
    for param in args.kernel_param:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", param):
            parser.error(f"--kernel-param must be a parameter name (letters, digits, '_', '.', '-'), not {param!r}")
    for image_dir in args.image_dir:
        if not image_dir.is_absolute():
            parser.error(f"--image-dir must be an absolute path, not {image_dir}")
    if args.vm_cgroup and not valid_cgroup_name(args.vm_cgroup):
        parser.error(f"--vm-cgroup must be one cgroup name (letters, digits, '.', '_', '-'), not {args.vm_cgroup!r}")
    if args.max_image_bytes < 1:
        parser.error(f"--max-image-bytes must be positive, not {args.max_image_bytes}")
    if args.l1_id is not None and args.l1_id < 1:
        parser.error(f"--l1-id must be the L0's id of this host (1 or more), not {args.l1_id}")


def one_node(args: argparse.Namespace, images: ImageStore, sysfs: SysfsFactory = RealSysfsIO) -> list[NodeRuntime]:
    """The one node of ``--node``: its L0, its sysfs under ``--sysfs-root`` (read and written through
    ``sysfs``), its QEMU VMs; with ``--l1-id`` one of its two hosts."""
    l0 = open_l0(args.l0_backend, args.l0_sim_state)
    io = sysfs(args.sysfs_root)
    if args.l1_id is not None:
        return [
            host_runtime(args.node, l0, args.l1_id, io, args.vm_runtime, args.channel_dir, args.handoff_dir, images)
        ]
    return [
        NodeRuntime(
            node=args.node,
            l0=l0,
            partitioner=Partitioner(io),
            migrator=QemuMigrator(args.vm_runtime),
            state_dir=args.state_dir,
            images=images,
        )
    ]


def build_runtimes(args: argparse.Namespace, nodes: NodeRuntimes = one_node) -> list[NodeRuntime]:
    """What every agent process sets up once (where its QEMUs go, one image store), then its nodes."""
    if args.vm_cgroup:
        place_vms_in(HostCgroup(args.vm_cgroup))
    images = ImageStore(
        args.image_dir, args.max_image_bytes, args.kernel_param
    )  # one checksum cache for all this agent's nodes
    runtimes = nodes(args, images)
    for runtime in runtimes:
        if isinstance(runtime.migrator, QemuMigrator | HostMigrator):  # (simulated VMs have no processes)
            runtime.migrator.reap_unrecorded()
    return runtimes


async def run(args: argparse.Namespace, nodes: NodeRuntimes = one_node) -> None:
    client = async_client(args.kubeconfig, field_manager=AGENT)
    host = AgentHost(
        client,
        build_runtimes(args, nodes),
        namespace=args.namespace,
        identity=args.identity,
        lease_seconds=args.lease_seconds,
        retry_seconds=args.retry_seconds,
        report_running_after=args.report_running_after,
    )
    runner = await serve_health(args.health_port, host.healthy.is_set) if args.health_port else None
    try:
        await host.run()
    finally:
        if runner is not None:
            await runner.cleanup()
        await client.close()


def main(
    argv: list[str] | None = None,
    *,
    parse: Callable[[list[str] | None], argparse.Namespace] = parse_args,
    nodes: NodeRuntimes = one_node,
) -> int:
    """The agent process; ``parse`` and ``nodes`` let a wrapper add flags and bring its own nodes."""
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.l1_id is None:  # timing records serve the two-host benchmark; a fleet's agent skips them
        logging.getLogger("hostrefresh.timing").setLevel(logging.WARNING)
    else:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as exc:  # without CAP_SYS_NICE: run as we are, and say so
            logging.getLogger("hostrefresh.agent").warning("cannot set CPU priority %d: %s", args.nice, exc)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    try:
        eventloop.run(run(args, nodes))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
