"""PID 1 of a simulated host: sets up the host's own view, keeps its agent running, reaps orphans.

Started by the machine inside new PID, mount and UTS namespaces (``unshare``). It makes the host's
own directory appear at ``<node>/host`` and hides every host's directory under ``<node>/hosts``,
names the host, then runs the agent as a service (restarted when it exits, as systemd would: its
environment adds ``--agent-env`` and the host's failpoints directory, nothing else of the host does) and
reaps whatever is re-parented to it (QEMUs whose agent died). When it dies, the kernel kills every
process of the host at once: that is how the machine takes a retired host away.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hostrefresh import failpoints
from hostrefresh.sim.machine.layout import NodeLayout

RESTART_DELAY_S = 0.5


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def isolate(layout: NodeLayout, l1: int, hostname: str) -> None:
    """The host sees its own directory at ``host/`` and no host's directory under ``hosts/``."""
    layout.inside.mkdir(exist_ok=True)
    _mount("--bind", str(layout.host(l1)), str(layout.inside))
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "hidden-hosts", str(layout.hosts))
    socket.sethostname(hostname)


def serve(argv: list[str], log: Path, env: dict[str, str]) -> None:
    """Run ``argv`` (with ``env``) forever (restart on exit) and reap every other child."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    child: subprocess.Popen[bytes] | None = None
    while not stopping:
        if child is None:
            with open(log, "ab") as out:
                child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.1)
            continue
        except InterruptedError:
            continue
        if child is not None and pid == child.pid:
            child.returncode = 0
            child = None
            time.sleep(RESTART_DELAY_S)
    if child is not None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
    sys.exit(0)  # PID 1 exits: the kernel kills the rest of the host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostrefresh-sim-hostinit", description=__doc__)
    parser.add_argument("--node-dir", type=Path, required=True)
    parser.add_argument("--l1", type=int, required=True)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE", help="for the agent only")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the agent's command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if os.getpid() != 1:
        parser.error("must run as PID 1 of a new PID namespace (the machine starts it with unshare)")
    layout = NodeLayout(args.node_dir)
    isolate(layout, args.l1, args.hostname)
    env = dict(os.environ)
    env.update(item.split("=", 1) for item in args.agent_env)
    env[failpoints.ENV] = str(layout.failpoints(args.l1))
    serve(command, layout.inside / "agent.log", env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
