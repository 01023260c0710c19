"""``python -m hostrefresh.sim.machine``: run simulated machines with two-host nodes, start VMs in them.

run --root DIR --node NAME [--node NAME ...] [--cpus N --memory-blocks N] [--agent-env K=V ...] -- AGENT-ARGS...
vm-start --node-dir DIR --l1 N --spec JSON      (inside a host; see vms.py)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hostrefresh.nodeagent.migrate import VmSpec
from hostrefresh.sim.machine.layout import NodeLayout
from hostrefresh.sim.machine.machine import POLL_S, Machine, MachineSpec, power_on
from hostrefresh.sim.machine.vms import vm_start


def env_item(text: str) -> str:
    """A KEY=VALUE item of an environment (the key non-empty)."""
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. FAKETIME=+30s)")
    return text


def agent_command(extra: list[str]) -> Callable[[NodeLayout, int], list[str]]:
    def command(layout: NodeLayout, l1: int) -> list[str]:
        inside = layout.inside
        return [
            sys.executable,
            "-m",
            "hostrefresh.sim.agent",
            f"--node={layout.node}",
            f"--l1-id={l1}",
            "--l0-backend=sim",
            f"--l0-sim-state={layout.l0_state}",
            "--fake-sysfs",
            f"--sysfs-root={inside / 'sysfs'}",
            f"--vm-runtime={inside / 'vms'}",
            f"--channel-dir={layout.channel}",
            f"--handoff-dir={layout.handoff}",
            f"--identity={layout.node}",
            *extra,
        ]

    return command


def run(args: argparse.Namespace) -> int:
    extra = args.agent_args[1:] if args.agent_args[:1] == ["--"] else args.agent_args
    spec = MachineSpec(cpus=args.cpus, memory_blocks=args.memory_blocks)
    machines = []
    for node in args.node:
        layout = NodeLayout(args.root / node)
        power_on(layout, spec)
        machines.append(Machine(layout, agent_command(extra), args.agent_env))
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for machine in machines:
                try:
                    machine.step()
                except Exception:
                    logging.exception("machine %s: step failed", machine.layout.node)
            time.sleep(POLL_S)
    finally:
        for machine in machines:
            machine.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hostrefresh.sim.machine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="simulated machines, one host per running L1, until SIGTERM")
    r.add_argument("--root", type=Path, required=True, help="the machines' directory (one subdirectory a node)")
    r.add_argument("--node", action="append", required=True, help="a node (machine) name; repeat for more")
    r.add_argument("--cpus", type=int, default=MachineSpec.cpus)
    r.add_argument("--memory-blocks", type=int, default=MachineSpec.memory_blocks, help="of 128 MiB")
    r.add_argument(
        "--agent-env",
        type=env_item,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="for every host's agent; repeat",
    )
    r.add_argument("agent_args", nargs=argparse.REMAINDER, help="-- arguments for every host's agent")
    v = sub.add_parser("vm-start", help="(inside a host) start a VM's QEMU and record it")
    v.add_argument("--node-dir", type=Path, required=True)
    v.add_argument("--l1", type=int, required=True)
    v.add_argument("--spec", required=True, help="the VM spec as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "run":
        return run(args)
    vm_start(args.node_dir, args.l1, VmSpec.from_dict(json.loads(args.spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
