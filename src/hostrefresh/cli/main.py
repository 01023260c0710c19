"""``kubectl hostrefresh``: follow and steer host refreshes from kubectl.

Installed as ``kubectl-hostrefresh`` so kubectl finds it as a plugin. NAME is a RefreshPlan, a
HostRefresh, or a node (its newest HostRefresh), looked up in that order.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from lightkube import Client
from rich.console import Console

from hostrefresh.cli import completion, config, control, show, timeline, version, watch
from hostrefresh.cli.errors import EXIT_CODES_HELP, CliError, Exit
from hostrefresh.cli.output import console, error_console

Handler = Callable[[Client, argparse.Namespace, Console], int]


def parse_duration(text: str) -> float:
    """kubectl-style duration: 90, 90s, 5m, 1h30m, 500ms."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 30s, 5m, 1h30m)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _positive(text: str) -> int:
    """A wave number: 1 or more."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a wave number (1, 2, ...)")
    return int(text)


def _common() -> argparse.ArgumentParser:
    """Flags every verb takes, before or after it (defaults only at the top level)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kubeconfig",
        type=Path,
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, merged, or ~/.kube/config)",
    )
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context to use")
    common.add_argument(
        "--request-timeout",
        type=parse_duration,
        default=argparse.SUPPRESS,
        help="how long one API request may take before it is given up (e.g. 5s; 0: no limit)",
    )
    return common


def _output(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("json", "yaml", "wide", "name")) -> None:
    parser.add_argument("-o", "--output", choices=choices, default=None, help="output format")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="kubectl hostrefresh",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(kubeconfig=None, context=None, request_timeout=None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")

    def verb(name: str, help_: str, aliases: list[str] | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_, description=help_, parents=[common], aliases=aliases or [], epilog=EXIT_CODES_HELP
        )

    get = verb("get", "list plans and refreshes, or one plan with its refreshes", aliases=["list"])
    get.add_argument("name", nargs="?", help="PLAN, HostRefresh or NODE")
    get.add_argument(
        "-l", "--selector", default=None, help="list only what these labels select (kubectl's -l syntax, e.g. pool=gpu)"
    )
    _output(get)

    for name, help_, interval in (
        (
            "status",
            "where a plan or a node's refresh stands; --timeout waits until it ends",
            "seconds between polls while waiting (default 1s)",
        ),
        (
            "watch",
            "live progress per node and for the fleet (with the plan's ETA), until the rollout ends",
            "seconds between redraws of the terminal view (default 1s); changes arrive by a Kubernetes watch",
        ),
    ):
        cmd = verb(name, help_)
        cmd.add_argument("name", nargs="?", help="PLAN or NODE (default: the only plan)")
        cmd.add_argument("--timeout", type=parse_duration, default=None, help="wait at most this long (e.g. 10m)")
        cmd.add_argument("--interval", type=parse_duration, default=1.0, help=interval)
        _output(cmd)

    describe = verb("describe", "one refresh's timeline: phases, nested window, VM handovers, Events")
    describe.add_argument("name", help="NODE or HostRefresh (or a PLAN)")
    describe.set_defaults(plan_ok=True)
    _output(describe, ("json", "yaml"))

    tl = verb("timeline", "write a Gantt chart of a rollout (PNG, SVG or HTML)")
    tl.add_argument("plan", help="RefreshPlan")
    tl.add_argument("-o", "--output", required=True, help="FILE.png, FILE.svg or FILE.html")
    tl.add_argument("--format", choices=timeline.FORMATS, default=None, help="image format (default: from the suffix)")

    start = verb("start", "refresh one node (creates a HostRefresh)")
    start.add_argument("node", help="node to refresh")
    start.add_argument(
        "--version", required=True, help="target version label (host software, or QEMU with --scope vmm)"
    )
    start.add_argument(
        "--scope",
        choices=["host", "vmm"],
        default="host",
        help="host (default): kernel, KVM and QEMU, through a new host booted beside the old one; vmm: QEMU only, "
        "each VM handed to --qemu on the same host, never nested",
    )
    start.add_argument(
        "--kernel", default=None, help="(host) path of the target kernel on the node, in an allowed image directory"
    )
    start.add_argument("--initrd", default=None, help="(host) path of the target initrd")
    start.add_argument("--cmdline", default="", help="(host) target kernel command line")
    start.add_argument(
        "--checksum",
        default=None,
        help="(host) sha256:<hex> of the kernel (then initrd): `sha256sum KERNEL`, or `cat KERNEL INITRD | sha256sum`",
    )
    start.add_argument(
        "--qemu", default=None, help="(vmm) path of the target QEMU binary, in an allowed image directory"
    )
    start.add_argument(
        "--qemu-checksum", default=None, help="(vmm) sha256:<hex> of the QEMU binary: `sha256sum BINARY`"
    )
    start.add_argument("--cpus", type=int, default=2, help="CPUs for the new host's partition")
    start.add_argument("--memory", default="4Gi", help="memory for the new host's partition")
    start.add_argument("--name", default=None, help="HostRefresh name (default: <node>-<version>)")

    for name, help_ in (
        ("pause", "pause a plan (no new node starts) or a refresh (holds after its current step)"),
        ("resume", "resume a paused plan or refresh"),
        ("abort", "roll a refresh back (before Retiring); for a plan: pause it and abort its running refreshes"),
        ("retry", "retry failed nodes: a plan's failed refreshes, or one failed refresh"),
    ):
        cmd = verb(name, help_)
        cmd.add_argument(
            "target",
            nargs="+",
            metavar="[KIND] NAME",
            help="NAME, KIND NAME or KIND/NAME (KIND: plan, hostrefresh, node)",
        )

    approve = verb("approve", "let a plan's wave that waits for approval start (spec.approval)")
    approve.add_argument("target", nargs="+", metavar="[plan] NAME", help="the RefreshPlan: NAME or plan/NAME")
    approve.add_argument(
        "--wave",
        type=_positive,
        default=None,
        help="approve every wave up to this number (default: the wave that waits, else the next one)",
    )

    ver = verb("version", "the plugin's version and the API versions the cluster serves")
    ver.add_argument("--client", action="store_true", help="the plugin's version only")
    _output(ver, ("json", "yaml"))

    comp = verb("completion", "print a shell completion script")
    comp.add_argument("shell", choices=sorted(completion.SCRIPTS))

    hidden = sub.add_parser("__complete", parents=[common])
    hidden.add_argument("words", nargs=argparse.REMAINDER)
    return parser


VERBS = [
    "get",
    "status",
    "watch",
    "describe",
    "timeline",
    "start",
    "pause",
    "resume",
    "abort",
    "retry",
    "approve",
    "version",
    "completion",
]
HANDLERS: dict[str, Handler] = {
    "get": show.cmd_get,
    "list": show.cmd_get,
    "status": show.cmd_status,
    "describe": show.cmd_describe,
    "watch": watch.cmd_watch,
    "timeline": timeline.cmd_timeline,
    "start": control.cmd_start,
    "pause": control.cmd_pause_resume,
    "resume": control.cmd_pause_resume,
    "abort": control.cmd_abort,
    "retry": control.cmd_retry,
    "approve": control.cmd_approve,
}


def run(args: argparse.Namespace, out: Console) -> int:
    def make_client() -> Client:
        return config.client(args.kubeconfig, args.context, args.request_timeout)

    if args.command == "completion":
        return completion.cmd_completion(None, args, out)
    if args.command == "__complete":
        for line in completion.candidates(list(args.words) or [""], VERBS, make_client):
            out.print(line, markup=False)
        out.print(completion.NO_FILE_COMP, markup=False)
        return Exit.OK
    if args.command == "version":
        return version.cmd_version(make_client, args, out)
    return HANDLERS[args.command](make_client(), args, out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, console())
    except CliError as exc:
        error_console().print(f"error: {exc}", markup=False)
        return int(exc.code)
    except KeyboardInterrupt:
        return 130


def complete_main() -> None:
    """Entry point ``kubectl_complete-hostrefresh``: kubectl passes the words typed after the plugin name."""
    sys.exit(main(["__complete", *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
