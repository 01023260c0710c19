"""A real Prometheus server (Debian's build, unpacked into the cache) scraping a switch the test holds.

The switch is a gauge served by prometheus-client; an alerting rule fires while it is above 0. Tests
flip it to make the plans' Prometheus gate close and open, through Prometheus' own scraping and rule
evaluation, as in a cluster.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from hostrefresh.controlplane.tools import ensure_prometheus

#: The alert the rule file defines, and the metric it watches.
ALERT = "FleetTrouble"
METRIC = "fleet_trouble"


@dataclass
class Prometheus:
    url: str
    trouble: Gauge
    log: Path

    def alert_firing(self) -> bool:
        """Whether Prometheus itself reports the alert firing now."""
        query = urllib.parse.quote(f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}')
        with urllib.request.urlopen(f"{self.url}/api/v1/query?query={query}", timeout=5) as response:
            return b'"result":[]' not in response.read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def prometheus(workdir: Path) -> Iterator[Prometheus]:
    """Prometheus on loopback, scraping the switch every second and evaluating its rule every second."""
    workdir.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    trouble = Gauge(METRIC, "1 while the test says the fleet is in trouble", registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    exporter_port = server.server_port
    port = _free_port()
    (workdir / "rules.yaml").write_text(
        f"groups:\n- name: fleet\n  interval: 1s\n  rules:\n  - alert: {ALERT}\n    expr: {METRIC} > 0\n"
    )
    (workdir / "prometheus.yaml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yaml]\n"
        f"scrape_configs: [{{job_name: fleet, static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]}}]\n"
    )
    log = workdir / "prometheus.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                str(ensure_prometheus()),
                f"--config.file={workdir / 'prometheus.yaml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not become ready: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Prometheus(url, trouble, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.shutdown()
        thread.join(5)
