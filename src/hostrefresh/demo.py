"""``make demo``: a local demo fleet refreshing itself on an embedded control plane.

Starts a real kube-apiserver + etcd on loopback, installs the CRDs, creates nodes, runs the real
operator, applies a RefreshPlan, and shows the rollout live until every node runs the target host
software. The first ``--real-nodes`` nodes are machines of the machine simulator: two real isolated
hosts (namespaces, each with its own agent process) and real QEMU test guests, whose memory is
verified in the new host at the end. The other nodes are simulated (a simulated L0, a fake sysfs and
simulated VMs, all hosted by one agent process) so a fleet fits on a laptop. The L0 is simulated
everywhere: no real L0 hypervisor runs on a development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lightkube.core.exceptions import ApiError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hostrefresh.api import API_VERSION, GROUP, RefreshPlan, RefreshScope
from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.cli.timeline import render_plan_timeline
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.controlplane.processes import spawn, stop_all
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.names import DEFAULT_NAMESPACE
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource
from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.nodeagent.migrate import Inventory
from hostrefresh.sim.guest import GuestVerifier
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.guest.qemubuilds import image_tree, installed_build, other_build, target_spec
from hostrefresh.sim.machine.layout import NodeLayout
from hostrefresh.sim.machine.vms import driving_host, launch_in_host
from hostrefresh.sim.node import SimNodeSpec, create_sim_node

PLAN = "demo-fleet"
#: The label of the demo's nodes, which its plan selects.
POOL_LABEL = {f"{GROUP}/pool": "demo"}


def _dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = obj.to_dict()
    return out


def _table(
    items: list[dict[str, Any]], plan: dict[str, Any] | None, elapsed: float, zones: dict[str, str], real: set[str]
) -> Table:
    status = (plan or {}).get("status") or {}
    title = (
        f"RefreshPlan {PLAN}: {status.get('succeeded', 0)}/{status.get('nodes', '?')} nodes refreshed, "
        f"{status.get('active', 0)} active, {elapsed:.0f}s"
    )
    table = Table(title=title)
    for column in ("node", "zone", "VMs are", "phase", "agent step", "nested s", "VMs handed over", "paused ms"):
        table.add_column(column)
    for item in sorted(items, key=lambda i: i["spec"]["nodeName"]):
        st = item.get("status") or {}
        agent = st.get("agent") or {}
        vms = agent.get("vms") or []
        moved = sum(1 for vm in vms if vm.get("result") == "HandedOver")
        node = item["spec"]["nodeName"]
        pauses = [f"{vm['downtimeMillis']:.1f}" for vm in vms if vm.get("downtimeMillis") is not None]
        table.add_row(
            node,
            zones.get(node, ""),
            "real QEMU, 2 hosts" if node in real else "simulated",
            st.get("phase", "-"),
            f"{agent.get('step', '-')} {agent.get('stepState', '')}",
            f"{agent.get('nestedSeconds', 0):.2f}",
            f"{moved}/{len(vms)}",
            " ".join(pauses) if node in real else "",
        )
    return table


def _real_machines(
    cp: ControlPlane,
    lab: GuestLab,
    names: list[str],
    workdir: Path,
    procs: list[subprocess.Popen[bytes]],
    qemu: str = "",
) -> dict[str, list[str]]:
    """Start the machine simulator for ``names`` and two real test guests (on QEMU ``qemu``, default
    the installed one) in each one's first host."""
    root = lab.root / "machines"
    argv = [sys.executable, "-m", "hostrefresh.sim.machine", "run", f"--root={root}"]
    argv += [f"--node={name}" for name in names]
    argv += ["--", f"--kubeconfig={cp.kubeconfig}", f"--namespace={DEFAULT_NAMESPACE}", "--lease-seconds=15"]
    argv += [f"--image-dir={workdir / 'images'}"]  # where run() puts the target image
    procs.append(spawn(argv, workdir / "machines.log"))
    guests: dict[str, list[str]] = {}
    for name in names:
        layout = NodeLayout(root / name)
        deadline = time.monotonic() + 60
        while not (layout.host(1) / "init.pid").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"machine {name} did not come up; see {workdir / 'machines.log'}")
            time.sleep(0.1)
        guests[name] = [f"{name}-vm{i}" for i in range(2)]
        for vm in guests[name]:
            launch_in_host(layout, lab.spec(vm, shared=True, memory_mib=64, qemu=qemu))
    return guests


def _verify_real(lab: GuestLab, guests: dict[str, list[str]]) -> list[str]:
    """Each real guest runs in its node's (new) host with its whole memory pattern intact."""
    lines = []

    async def verify() -> None:
        for node, vms in guests.items():
            layout = NodeLayout(lab.root / "machines" / node)
            l1 = driving_host(layout)
            records = {r.name: r for r in Inventory(layout.run(l1)).records()}
            for vm in vms:
                record = records.get(vm)
                if record is None or "source" not in record.instances:
                    lines.append(f"{vm}: LOST: host L1 {l1} of {node} has no record of it")
                    continue
                inst = record.instances["source"]
                try:
                    report = await GuestVerifier(layout.outside(inst.aux_socket, l1), lab.root).assert_ok()
                except Exception as exc:  # a guest that is gone is a finding to report, not a crash
                    lines.append(f"{vm}: LOST or damaged in host L1 {l1} of {node}: {type(exc).__name__}: {exc}")
                    continue
                lines.append(
                    f"{vm}: runs in host L1 {l1} of {node}, {report.pages_checked} pages intact, still running"
                )

    asyncio.run(verify())
    return lines


def _target(scope: str, images: Path) -> tuple[dict[str, Any], str]:
    """The plan's target for ``scope``, and the QEMU the real guests start on.

    A host refresh boots a (simulated) new host kernel. A VMM refresh hands the guests from an
    older Debian build of QEMU (unpacked in the cache) to the installed one.
    """
    images.mkdir(parents=True, exist_ok=True)
    if scope == "vmm":
        older, installed = other_build(), installed_build()
        binary = image_tree(installed, images / "qemu-installed")
        version = installed.version.split(":")[-1]
        return target_spec(binary, version), str(older.binary)
    image = images / "vmlinuz-6.12.4-kvm1"
    image.write_bytes(b"simulated host kernel 6.12.4-kvm1\n" * 256)
    checksum = "sha256:" + hashlib.sha256(image.read_bytes()).hexdigest()
    return {"version": "6.12.4-kvm1", "kernel": str(image), "checksum": checksum}, ""


def run(
    nodes: int,
    zone_count: int,
    max_unavailable: int,
    keep: bool,
    workdir: Path,
    real_nodes: int = 1,
    scope: str = "host",
) -> int:
    console = Console()
    real_nodes = max(0, min(real_nodes, nodes))
    what = "QEMU only (VMM refresh, never nested)" if scope == "vmm" else "the whole host (host refresh)"
    console.print(
        f"[bold]hostrefresh demo[/bold]: {nodes} nodes in {zone_count} zones ({real_nodes} with real QEMU guests "
        f"in two real hosts, the rest simulated), refreshing {what}, workdir {workdir}"
    )
    cp = ControlPlane(workdir / "controlplane")
    cp.start()
    procs: list[subprocess.Popen[bytes]] = []
    lab = GuestLab() if real_nodes else None
    try:
        cp.install_crds(DEFAULT_NAMESPACE)
        names = [f"worker-{i:02d}" for i in range(nodes)]
        real = set(names[:real_nodes])
        for i, name in enumerate(names):
            register_node(cp, name, {**POOL_LABEL, "topology.kubernetes.io/zone": f"zone-{i % zone_count}"})
        target, guest_qemu = _target(scope, workdir / "images")
        guests = _real_machines(cp, lab, names[:real_nodes], workdir, procs, guest_qemu) if lab is not None else {}
        for name in names[real_nodes:]:
            create_sim_node(workdir / "nodes", name, SimNodeSpec(sim_vms=3))
            with open_l0("sim", workdir / "nodes" / name / "l0.state") as l0:  # make each boot take a moment
                l0.sim_inject_fault(FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=1.0, times=1))
        kube = ["--kubeconfig", str(cp.kubeconfig), "--namespace", DEFAULT_NAMESPACE]
        procs.append(
            spawn(
                [sys.executable, "-m", "hostrefresh.operator.main", *kube, "--log-format=plain"],
                workdir / "operator.log",
            )
        )
        if names[real_nodes:]:
            procs.append(
                spawn(
                    [
                        sys.executable,
                        "-m",
                        "hostrefresh.sim.agent",
                        *kube,
                        "--sim-root",
                        str(workdir / "nodes"),
                        "--sim-nodes",
                        ",".join(names[real_nodes:]),
                        "--lease-seconds=15",
                        f"--image-dir={workdir / 'images'}",
                    ],
                    workdir / "agent.log",
                )
            )
        plan = {
            "apiVersion": API_VERSION,
            "kind": RefreshPlan.KIND,
            "metadata": {"name": PLAN},
            "spec": {
                "nodeSelector": {"matchLabels": POOL_LABEL},
                "target": target,
                "template": {
                    "scope": (RefreshScope.VMM if scope == "vmm" else RefreshScope.HOST).value,
                    "partition": {"cpus": 2, "memory": "2Gi"},
                },
                "maxUnavailable": max_unavailable,
                "maxUnavailablePerZone": 1,
                "canary": 1,
                "soakSeconds": 2,
            },
        }
        cp.kubectl("apply", "-f", "-", stdin=json.dumps(plan))
        client = sync_client(cp.kubeconfig)
        zones = {name: f"zone-{i % zone_count}" for i, name in enumerate(names)}
        started = time.monotonic()
        done = False
        stalled: str | None = None
        with Live(console=console, refresh_per_second=4) as live:
            while time.monotonic() - started < 600:
                try:
                    items = [_dict(o) for o in client.list(HostRefreshResource, labels={PLAN_LABEL: PLAN})]
                    plan_obj = _dict(client.get(RefreshPlanResource, PLAN))
                except ApiError as exc:  # e.g. 429 while the new CRDs' storage initializes
                    live.update(f"waiting for the API server: {exc}")
                    time.sleep(0.5)
                    continue
                live.update(_table(items, plan_obj, time.monotonic() - started, zones, real))
                status = plan_obj.get("status") or {}
                if status.get("nodes") and status.get("succeeded") == status.get("nodes"):
                    done = True
                    break
                stalled = _stalled(status)
                if stalled is not None:
                    break
                time.sleep(0.5)
        agents = [(i.get("status") or {}).get("agent") or {} for i in items]
        nested = [a.get("nestedSeconds", 0.0) for a in agents]
        vms = [vm for a in agents for vm in a.get("vms") or []]
        zero_copy = sum(1 for vm in vms if vm.get("path") == "ZeroCopy" and vm.get("result") == "HandedOver")
        if done:
            console.print(
                f"[bold green]done[/bold green]: {len(items)} nodes refreshed in {time.monotonic() - started:.1f}s; "
                f"{len(vms)} VMs handed over on their own machines ({zero_copy} zero-copy); "
                f"at most {max(nested, default=0):.2f}s nested per node"
            )
            if lab is not None:
                for line in _verify_real(lab, guests):
                    console.print(f"verified: {line}")
        elif stalled is not None:
            console.print(f"[bold red]the rollout stalled[/bold red]: {stalled}; logs in {workdir}", markup=True)
        else:
            console.print(f"[bold red]the rollout did not finish in 10 minutes[/bold red]; logs in {workdir}")
        picture = workdir / "rollout-timeline.png"
        try:
            console.print(render_plan_timeline(client, PLAN, picture), markup=False)
        except Exception as exc:  # the picture is an extra: the demo's result stands without it
            console.print(f"[yellow]no timeline picture[/yellow]: {exc}")
        if keep:
            console.print(
                f"the control plane keeps running; export KUBECONFIG={cp.kubeconfig}; "
                f"PATH={cp.tools.bin_dir}:$PATH; Ctrl-C stops it"
            )
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # sigwait needs them blocked
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0 if done else 1
    finally:
        # Everything the demo started stops, even under a second Ctrl-C or SIGTERM meanwhile.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        stop_all(procs)
        if lab is not None:
            asyncio.run(lab.close())
        cp.stop()


def _stalled(status: dict[str, Any]) -> str | None:
    """Why the plan needs a person (its Stalled condition's reason and message), or None."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Stalled" and cond.get("status") == "True":
            return f"{cond.get('reason')}: {cond.get('message')}"
    return None


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM ends the demo as Ctrl-C does: through its clean-up, which stops all it started."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hostrefresh.demo", description=__doc__)
    parser.add_argument("--nodes", type=int, default=12, help="simulated nodes (default %(default)s)")
    parser.add_argument("--zones", type=int, default=3, help="zones they spread over (default %(default)s)")
    parser.add_argument("--max-unavailable", type=int, default=3, help="nodes refreshing at once")
    parser.add_argument(
        "--real-nodes",
        type=int,
        default=1,
        help="nodes with real QEMU test guests in two real hosts (machine simulator; default %(default)s)",
    )
    parser.add_argument(
        "--scope",
        choices=["host", "vmm"],
        default="host",
        help="host: refresh the whole host (kernel, KVM, QEMU) through a new host booted beside the old one; "
        "vmm: replace only QEMU, handing each VM to the installed QEMU from an older build (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the control plane running afterwards")
    parser.add_argument("--workdir", type=Path, default=None, help="where state and logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hostrefresh-demo-"))
    os.makedirs(workdir, exist_ok=True)
    if args.real_nodes < 0:
        parser.error(f"--real-nodes must be 0 or more, not {args.real_nodes}")
    signal.signal(signal.SIGTERM, _terminated)
    # Ctrl-C stops the demo even when its shell started it with SIGINT ignored (as a non-interactive
    # shell does for background jobs): Python then installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(args.nodes, args.zones, args.max_unavailable, args.keep, workdir, args.real_nodes, args.scope)
    except KeyboardInterrupt:
        print(f"stopped; everything the demo started has stopped (logs in {workdir})", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
