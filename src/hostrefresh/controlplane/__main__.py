"""``python -m hostrefresh.controlplane {build,kind-tools,krew,promtool,up,down}``: the tools and a control plane for manual use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hostrefresh.controlplane.cluster import ControlPlane
from hostrefresh.controlplane.tools import (
    KIND_TARGETS,
    ensure_kind_tools,
    ensure_krew,
    ensure_promtool,
    ensure_tools,
    kind_toolset,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hostrefresh.controlplane", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or reuse) etcd, kube-apiserver, kubectl and helm; print the bin dir")
    kind_tools = sub.add_parser(
        "kind-tools", help="build (or reuse) kind, crictl and the node binaries; print the bin dir"
    )
    kind_tools.add_argument(
        "--if-built",
        action="store_true",
        help="build nothing: print the bin dir if the tools are built, else exit 3 (for clean-up scripts)",
    )
    sub.add_parser("krew", help="build (or reuse) krew, the kubectl plugin manager; print the bin dir (kubectl-krew)")
    sub.add_parser(
        "promtool",
        help="unpack (or reuse) promtool from Debian's prometheus package, which tests the alerting rules; print its path",
    )
    up = sub.add_parser("up", help="start a control plane that keeps running; print the KUBECONFIG line")
    up.add_argument("--dir", type=Path, default=Path(".cache/cluster"), help="data directory (default %(default)s)")
    down = sub.add_parser("down", help="stop the control plane started by `up`")
    down.add_argument("--dir", type=Path, default=Path(".cache/cluster"), help="data directory (default %(default)s)")
    args = parser.parse_args(argv)

    if args.command == "build":
        print(ensure_tools().bin_dir)
        return 0
    if args.command == "kind-tools":
        if args.if_built:
            built = kind_toolset()
            if not built.complete(KIND_TARGETS):
                return 3
            print(built.bin_dir)
            return 0
        print(ensure_kind_tools().bin_dir)
        return 0
    if args.command == "krew":
        print(ensure_krew().bin_dir)
        return 0
    if args.command == "promtool":
        print(ensure_promtool())
        return 0
    workdir: Path = args.dir.resolve()
    if args.command == "up":
        if ControlPlane.stop_detached(workdir):
            print(f"stopped the previous control plane in {workdir}", file=sys.stderr)
        cp = ControlPlane(workdir, detached=True)
        cp.start()
        print(f"control plane ready at {cp.url}; tools in {cp.tools.bin_dir}", file=sys.stderr)
        print(f"export KUBECONFIG={cp.kubeconfig} PATH={cp.tools.bin_dir}:$PATH")
        return 0
    if not ControlPlane.stop_detached(workdir):
        print(f"no control plane is running from {workdir}", file=sys.stderr)
        return 1
    print(f"control plane in {workdir} stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
