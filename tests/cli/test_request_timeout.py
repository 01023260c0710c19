"""--request-timeout bounds each API request, as kubectl's does: against a server that accepts the
connection and never answers, the plugin gives up after it and says it cannot reach the API server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostrefresh.cli.main import build_parser


def _silent_server() -> socket.socket:
    """A loopback socket that accepts connections (the kernel's backlog) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def _kubeconfig(path: Path, port: int) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: silent\n"
        f"clusters: [{{name: silent, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: silent, context: {cluster: silent, user: u}}]\n"
    )
    return path


def test_a_request_to_a_silent_server_is_given_up_after_the_request_timeout(tmp_path: Path) -> None:
    with _silent_server() as server:
        kubeconfig = _kubeconfig(tmp_path / "config", server.getsockname()[1])
        argv = [sys.executable, "-m", "hostrefresh.cli", "get", "--kubeconfig", str(kubeconfig)]
        started = time.monotonic()
        run = subprocess.run([*argv, "--request-timeout", "1s"], capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
    assert run.returncode != 0 and "cannot reach the API server" in run.stderr, run.stderr
    assert "Timeout" in run.stderr, run.stderr
    # Well under the client's own default (which this machine's load cannot stretch 1 s into).
    assert took < 9, took


@pytest.mark.parametrize(("given", "seconds"), [("5s", 5.0), ("0", 0.0), ("1m30s", 90.0)])
def test_the_flag_is_read_as_kubectl_reads_it(given: str, seconds: float) -> None:
    args = build_parser().parse_args(["get", "--request-timeout", given])
    assert args.request_timeout == seconds
    assert build_parser().parse_args(["get"]).request_timeout is None
