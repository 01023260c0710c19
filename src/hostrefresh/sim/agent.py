"""``python -m hostrefresh.sim.agent``: the node agent with simulated parts wired in.

The agent itself (``hostrefresh-agent``, ``hostrefresh.nodeagent.main``) imports nothing of the
simulators; it takes each node's parts through ``main(nodes=...)``. This wrapper accepts every flag of
the agent and adds the simulated ones:

- ``--sim-root DIR --sim-nodes a,b,c [--sim-vms N]``: host many simulated nodes (simulated L0, fake
  sysfs, simulated VMs; ``hostrefresh.sim.node``) in one process, for fleet tests, benches and the demo.
- ``--fake-sysfs``: the one node's ``--sysfs-root`` is a fake sysfs tree (``hostrefresh.sim.sysfs``),
  not the kernel's: a host of the machine simulator, or a kind worker (with ``--l0-backend sim``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hostrefresh import flags
from hostrefresh.api.names import dns_subdomain_problem
from hostrefresh.nodeagent import main as agent_main
from hostrefresh.nodeagent.images import ImageStore
from hostrefresh.nodeagent.runtime import NodeRuntime
from hostrefresh.nodeagent.sysfs import RealSysfsIO
from hostrefresh.sim.node import SimNodeSpec, create_sim_node, open_sim_node
from hostrefresh.sim.sysfs import FakeSysfsIO

PROG = "python -m hostrefresh.sim.agent"


def build_parser() -> argparse.ArgumentParser:
    parser = agent_main.build_parser(prog=PROG, description=__doc__)
    sim = parser.add_argument_group("simulated parts")
    sim.add_argument(
        "--fake-sysfs",
        action="store_true",
        help="--sysfs-root is a fake sysfs tree (a host of the machine simulator, a kind worker), not the kernel's",
    )
    sim.add_argument("--sim-root", type=Path, default=None, help="host simulated nodes under this directory")
    sim.add_argument("--sim-nodes", default="", help="comma-separated simulated node names (with --sim-root)")
    sim.add_argument("--sim-vms", type=flags.whole(0), default=3, help="simulated VMs per simulated node")
    return parser


def sim_node_names(args: argparse.Namespace) -> list[str]:
    return [n for n in args.sim_nodes.split(",") if n]


def check_sim_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The simulated flags against each other and the agent's; nothing is created yet."""
    if args.sim_root is not None and not args.sim_nodes:
        parser.error("--sim-nodes names the simulated nodes to host under --sim-root")
    if args.sim_root is None and args.sim_nodes:
        parser.error("--sim-nodes needs --sim-root, the directory to host the simulated nodes under")
    if args.l1_id is not None and args.sim_root is not None:
        parser.error("--l1-id is for an agent in one host of one node; --sim-root hosts many nodes in one process")
    names = sim_node_names(args)
    for name in names:
        problem = dns_subdomain_problem(name)
        if problem is not None:
            parser.error(f"--sim-nodes: {name!r} is not a node name: it {problem}")
    if len(set(names)) != len(names):
        parser.error(f"--sim-nodes names a node twice: {args.sim_nodes}")
    if args.sim_root is not None and args.sim_root.exists() and not args.sim_root.is_dir():
        parser.error(f"--sim-root {args.sim_root} is not a directory")
    if args.fake_sysfs and args.sim_root is not None:
        parser.error("--fake-sysfs is for one host's fake sysfs; --sim-root makes its own for each simulated node")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sim_root is None and not args.node:
        parser.error("--node (or $NODE_NAME) is required unless --sim-root hosts simulated nodes")
    check_sim_args(parser, args)
    agent_main.check_args(parser, args, one_node=args.sim_root is None)
    return args


def sim_runtimes(args: argparse.Namespace, images: ImageStore) -> list[NodeRuntime]:
    """The simulated nodes of ``--sim-nodes`` (powered on when new), or the agent's one node, its
    sysfs fake with ``--fake-sysfs``."""
    if args.sim_root is None:
        return agent_main.one_node(args, images, FakeSysfsIO if args.fake_sysfs else RealSysfsIO)
    spec = SimNodeSpec(sim_vms=args.sim_vms)
    names = sim_node_names(args)
    for name in names:
        create_sim_node(args.sim_root, name, spec)
    return [open_sim_node(args.sim_root, name, images=images) for name in names]


def build_runtimes(args: argparse.Namespace) -> list[NodeRuntime]:
    """What ``main`` runs, for tests that look at the runtimes without starting the agent."""
    return agent_main.build_runtimes(args, sim_runtimes)


def main(argv: list[str] | None = None) -> int:
    return agent_main.main(argv, parse=parse_args, nodes=sim_runtimes)


if __name__ == "__main__":
    sys.exit(main())
