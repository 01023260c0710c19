"""``hostrefresh-operator``: run the kopf operator (HostRefresh lifecycle, RefreshPlan rollouts).

Leader election: replicas compete for a Lease and only the holder runs the handlers. (kopf's own
peering freezes *all* replicas of equal priority, so it is not used for high availability here.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, cast

import kopf
from prometheus_client import start_http_server

from hostrefresh import eventloop, flags
from hostrefresh.health import serve_health
from hostrefresh.kube.client import async_client
from hostrefresh.kube.leases import LeaderElector, LeadershipLostError
from hostrefresh.kube.link import ApiLink
from hostrefresh.kube.names import DEFAULT_NAMESPACE, OPERATOR
from hostrefresh.operator import handlers, metrics
from hostrefresh.operator.config import OperatorConfig
from hostrefresh.operator.gates import NoPrometheus, PrometheusReader
from hostrefresh.operator.kube import KubeWriter
from hostrefresh.operator.reconcile_plan import reconcile_plan
from hostrefresh.operator.reconcile_refresh import reconcile_refresh
from hostrefresh.operator.state import OperatorState
from hostrefresh.operator.workqueue import work

log = logging.getLogger("hostrefresh.operator")


def parse_args(argv: list[str] | None) -> OperatorConfig:
    """The operator's settings from flags and environment; a bad one exits (code 2) naming the flag."""
    parser = argparse.ArgumentParser(prog=OPERATOR, description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=None, help="kubeconfig (default: in-cluster or $KUBECONFIG)")
    parser.add_argument(
        "--namespace",
        type=flags.namespace,
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        help="namespace of the leader Lease and the agents' heartbeat Leases (default $POD_NAMESPACE or "
        f"{DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME") or socket.gethostname() + f"-{os.getpid()}",
        help="this replica's name in the leader Lease (default $POD_NAME, else host name and process id)",
    )
    parser.add_argument("--no-leader-elect", action="store_true", help="act without holding the leader Lease")
    parser.add_argument(
        "--lease-seconds",
        type=flags.seconds(1.0, inclusive=True),
        default=15.0,
        help="leader Lease duration, at least 1 (default %(default)s)",
    )
    parser.add_argument(
        "--plan-interval",
        type=flags.seconds(0.0),
        default=1.0,
        help="seconds between RefreshPlan passes, more than 0 (default %(default)s)",
    )
    parser.add_argument(
        "--max-starts-per-second",
        type=flags.non_negative,
        default=OperatorConfig.max_starts_per_second,
        help="refreshes granted their start per second at most, first come first served (0: no limit; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--start-backlog",
        type=flags.whole(0),
        default=OperatorConfig.start_backlog,
        metavar="WRITES",
        help="hold start grants while the backlog (the operator's unanswered API writes, and new "
        "HostRefresh objects without status) exceeds this (default %(default)s)",
    )
    parser.add_argument("--metrics-port", type=flags.port, default=0, help="serve Prometheus metrics here (0: off)")
    parser.add_argument("--health-port", type=flags.port, default=0, help="serve /healthz here (0: off)")
    parser.add_argument(
        "--marker-annotation",
        type=flags.annotation_key,
        action="append",
        default=None,
        help="annotation key set on refreshing nodes for other node actors (repeatable)",
    )
    parser.add_argument(
        "--events-namespace",
        type=flags.namespace,
        default=OperatorConfig.events_namespace,
        help="namespace of the Events about HostRefreshes and RefreshPlans (cluster-scoped objects; "
        "default %(default)s, where `kubectl events --for hostrefresh/NAME` looks)",
    )
    parser.add_argument(
        "--prometheus-url",
        type=flags.http_url,
        default=None,
        metavar="URL",
        help="Prometheus whose query API answers the RefreshPlans' spec.healthGates.prometheus (e.g. "
        "http://prometheus-operated.monitoring:9090); without it such gates stay closed",
    )
    parser.add_argument("--log-format", choices=["json", "plain"], default="json")
    args = parser.parse_args(argv)
    check_args(parser, args)
    config = OperatorConfig(
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        identity=args.identity,
        leader_elect=not args.no_leader_elect,
        lease_seconds=args.lease_seconds,
        plan_interval=args.plan_interval,
        max_starts_per_second=args.max_starts_per_second,
        start_backlog=args.start_backlog,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        events_namespace=args.events_namespace,
        prometheus_url=args.prometheus_url,
    )
    if args.marker_annotation:
        config = OperatorConfig(**{**config.__dict__, "marker_annotations": tuple(args.marker_annotation)})
    kopf.configure(log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN)
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return config


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What no single flag's type can see: flags that contradict each other, files that must exist."""
    if not args.identity.strip():
        parser.error("--identity (or $POD_NAME) is empty: give each replica a name, e.g. its pod's name")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        parser.error(f"--kubeconfig {args.kubeconfig}: no such file; give the path of a kubeconfig, or leave it out")
    flags.distinct_ports(parser, args.metrics_port, args.health_port)


async def run(config: OperatorConfig, stop_flag: asyncio.Event | None = None) -> None:
    """Run until stopped (or until leadership is lost, which raises)."""
    if config.kubeconfig is not None:
        os.environ["KUBECONFIG"] = str(config.kubeconfig)  # for kopf's own login
    client = async_client(config.kubeconfig, field_manager=OPERATOR)
    registry = handlers.registry()
    # Served by every replica (leader or standby): it says the process is alive, not who leads.
    health = await serve_health(config.health_port) if config.health_port else None
    # One view of the API server's answers for the process: its writes and its leader election feed it.
    link = ApiLink()

    async def lead() -> None:
        # A new leader starts from nothing but the API objects (see state.py).
        gates = PrometheusReader(config.prometheus_url) if config.prometheus_url else NoPrometheus()
        state = OperatorState(config=config, writer=KubeWriter(client, link), link=link, gates=gates)
        workers = [
            asyncio.create_task(work(state.refreshes, lambda name: reconcile_refresh(state, name), config.reconcilers)),
            asyncio.create_task(work(state.plans, lambda name: reconcile_plan(state, name), config.reconcilers)),
        ]
        metrics.LEADER.set(1)
        try:
            await kopf.operator(
                registry=registry,
                clusterwide=True,
                standalone=True,
                # Our own name: kopf would otherwise derive one from the user name, which a container's
                # arbitrary uid (no passwd entry) does not have.
                # (kopf's Identity is a NewType of str it does not export.)
                identity=cast(Any, config.identity),
                memo=kopf.Memo(state=state),
                stop_flag=stop_flag,
            )
        finally:
            metrics.LEADER.set(0)
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    metrics.LEADER.set(0)
    try:
        if config.leader_elect:
            elector = LeaderElector(
                client, config.namespace, OPERATOR, config.identity, config.lease_seconds, link=link
            )
            await elector.run(lead)
        else:
            await lead()
    finally:
        if health is not None:
            await health.cleanup()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    if config.metrics_port:
        start_http_server(config.metrics_port)
    try:
        eventloop.run(run(config))
    except LeadershipLostError as exc:
        log.error("%s; exiting so a restart rejoins the election", exc)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
