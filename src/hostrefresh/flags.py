"""Checks of command-line flags shared by the operator and the node agent.

Each ``argparse`` type here refuses a bad value with a message that says what is wanted, so a bad
flag (or the environment variable behind its default) stops the process at start, with exit code 2,
before it changes anything.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from urllib.parse import urlsplit

from hostrefresh.api.names import dns_label_problem, dns_subdomain_problem, qualified_name_problem


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def seconds(minimum: float = 0.0, *, inclusive: bool = False) -> Callable[[str], float]:
    """A duration in seconds, above ``minimum`` (or at least it, with ``inclusive``)."""

    def check(text: str) -> float:
        value = _number(text)
        if value < minimum or (value == minimum and not inclusive):
            bound = "at least" if inclusive else "more than"
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound} {minimum:g} seconds")
        return value

    return check


def non_negative(text: str) -> float:
    """A number of 0 or more."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number in ``minimum..maximum``."""

    def check(text: str) -> int:
        value = _integer(text)
        if value < minimum or (maximum is not None and value > maximum):
            wanted = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
            raise argparse.ArgumentTypeError(f"{text!r} must be {wanted}")
        return value

    return check


def port(text: str) -> int:
    """A TCP port, 1-65535, or 0 for off."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must be a port from 1 to 65535, or 0 for off")
    return value


def namespace(text: str) -> str:
    """A namespace's name."""
    problem = dns_label_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a namespace name: it {problem}")
    return text


def node_name(text: str) -> str:
    """A node's name."""
    problem = dns_subdomain_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a node name: it {problem}")
    return text


def annotation_key(text: str) -> str:
    """An annotation key (``example.com/name``)."""
    problem = qualified_name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an annotation key: it {problem}")
    return text


def http_url(text: str) -> str:
    """An http(s) URL with a host, such as a Prometheus server's (``http://prometheus:9090``)."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL of a server: write it as http://HOST:PORT (a path prefix may follow)"
        )
    return text


def distinct_ports(parser: argparse.ArgumentParser, metrics_port: int, health_port: int) -> None:
    """--metrics-port and --health-port cannot share a port (the second server could not bind)."""
    if metrics_port and metrics_port == health_port:
        parser.error(
            f"--metrics-port and --health-port are both {metrics_port}: give them different ports (or 0 for off)"
        )
