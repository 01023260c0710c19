"""``python -m hostrefresh.sim.guest.vmctl``: start and check test-guest VMs on a node.

For clusters where the agent runs in a pod (the kind e2e, a user trying the product on kind): the
test guests must be real QEMU VMs in the node's VM inventory, started from a shell in the agent's
container (``kubectl exec``), and checked afterwards with the guest's memory pattern. A VM started
here is one the agent hands over like any other; ``--vm-cgroup`` places it as the agent places its
own QEMUs (outside the pod's cgroup). Prints JSON; the exit status says whether everything held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from hostrefresh.nodeagent.migrate import QemuMigrator, VmSpec, choose_accel
from hostrefresh.nodeagent.migrate.placement import HostCgroup, valid_cgroup_name
from hostrefresh.nodeagent.migrate.process import place_vms_in
from hostrefresh.sim.guest.verifier import GuestVerifier


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hostrefresh.sim.guest.vmctl", description=__doc__)
    parser.add_argument("--vm-runtime", type=Path, required=True, help="the agent's --vm-runtime directory")
    sub = parser.add_subparsers(dest="command", required=True)
    launch = sub.add_parser("launch", help="start test guests (idempotent: a running one is left alone)")
    launch.add_argument("names", nargs="+", help="VM names")
    launch.add_argument("--image", type=Path, required=True, help="the test guest's kernel image")
    launch.add_argument("--ram-dir", type=Path, required=True, help="directory of the shared guest RAM files")
    launch.add_argument("--memory-mib", type=int, default=64, help="guest RAM in MiB (default %(default)s)")
    launch.add_argument("--vm-cgroup", default="", help="host cgroup for the QEMUs (as the agent's --vm-cgroup)")
    verify = sub.add_parser("verify", help="check that the guests run and their memory pattern is intact")
    verify.add_argument("names", nargs="+", help="VM names")
    args = parser.parse_args(argv)
    if args.command == "launch":
        if not args.image.is_file():
            parser.error(f"--image {args.image} is not a file: copy the test guest's image to the node first")
        if args.vm_cgroup and not valid_cgroup_name(args.vm_cgroup):
            parser.error(
                f"--vm-cgroup must be one cgroup name (letters, digits, '.', '_', '-'), not {args.vm_cgroup!r}"
            )
        if not 16 <= args.memory_mib <= 4096:
            parser.error(f"--memory-mib must be 16-4096, not {args.memory_mib}")
    return args


async def _launch(args: argparse.Namespace) -> dict[str, Any]:
    if args.vm_cgroup:
        place_vms_in(HostCgroup(args.vm_cgroup))
    args.ram_dir.mkdir(parents=True, exist_ok=True)
    migrator = QemuMigrator(args.vm_runtime)
    accel = choose_accel()
    out: dict[str, Any] = {}
    for name in args.names:
        spec = VmSpec(
            name=name,
            memory_mib=args.memory_mib,
            kernel=str(args.image),
            append="pace=0",
            mem_path=str(args.ram_dir / f"{name}.ram"),
            accel=accel,
        )
        record = await migrator.launch(spec)
        out[name] = {"owner": record.owner, "pid": record.instances[record.owner].pid, "accel": accel}
    # Back only once every guest has written its whole pattern once: from then on `verify` holds.
    scratch = _scratch(args.vm_runtime)
    for name in args.names:
        ctl = await GuestVerifier(migrator.owner_socket(name), scratch).wait_dirtied(passes=1, timeout=120)
        out[name]["passes"] = ctl.passes_completed
    return out


def _scratch(vm_runtime: Path) -> Path:
    """QEMU writes the guest's memory to a file for checks: in a directory of the node that it sees
    too, whichever container's mount namespace it was started from (the shell's /tmp may be another)."""
    scratch = vm_runtime / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


async def _verify(args: argparse.Namespace) -> dict[str, Any]:
    migrator = QemuMigrator(args.vm_runtime)
    scratch = _scratch(args.vm_runtime)
    out: dict[str, Any] = {}
    for name in args.names:
        try:
            report = await GuestVerifier(migrator.owner_socket(name), scratch).verify()
        except Exception as exc:  # a VM that cannot be read is a finding, reported with the others
            out[name] = {"ok": False, "errors": [f"{type(exc).__name__}: {exc}"]}
            continue
        record = migrator.inventory.load(name)
        out[name] = {
            "owner": record.owner,
            "pid": record.instances[record.owner].pid,
            "ok": report.ok,
            "advancing": report.advancing,
            "pagesChecked": report.pages_checked,
            "generation": report.control.generation if report.control and report.control.valid else None,
            "errors": report.errors[:10],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "launch":
        result = asyncio.run(_launch(args))
        print(json.dumps(result, indent=2))
        return 0
    result = asyncio.run(_verify(args))
    print(json.dumps(result, indent=2))
    return 0 if all(r["ok"] for r in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
