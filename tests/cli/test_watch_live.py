"""``watch`` against the real control plane: a change to a HostRefresh shows in its output, brought by a
Kubernetes watch. Every request the plugin makes is counted: over the whole run it lists each stream
once and then only watches, where polling would list every second."""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections import Counter
from typing import Any

import httpx2
import pytest
from rich.console import Console

from hostrefresh.cli import watch
from hostrefresh.cli.config import client as plugin_client
from hostrefresh.controlplane import ControlPlane
from tests.cli.fleet import FORWARD, client, make_plan, make_refresh, refresh_status, set_refresh_status, unique

pytestmark = pytest.mark.integration


def _kind(request: httpx2.Request) -> str:
    if request.url.params.get("watch") in ("true", "1"):
        return "watch"
    if request.method == "GET" and request.url.path.rstrip("/").rsplit("/", 1)[-1] in ("refreshplans", "hostrefreshes"):
        return "list"
    return request.method.lower()


def _wait_for(text: str, buffer: io.StringIO, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if text in buffer.getvalue():
            return True
        time.sleep(0.05)
    return False


def test_a_change_arrives_by_watch_without_a_list_per_second(crds: ControlPlane) -> None:
    c = client(crds)
    plan, node = unique("live"), unique("ln")
    make_plan(c, plan, {"nodes": 2, "pending": 1, "active": 1})
    child = f"{plan}-{node}"
    make_refresh(c, child, node, plan, refresh_status(0, "Migrating", steps=FORWARD[:5]))

    plugin = plugin_client(crds.kubeconfig, None)
    requests: list[str] = []
    http: Any = plugin._client._client  # lightkube's httpx client: count what the plugin sends
    http.event_hooks["request"].append(lambda r: requests.append(_kind(r)))
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=False, width=250)
    args = argparse.Namespace(name=plan, timeout=6.0, interval=1.0, output=None)
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(watch.cmd_watch(plugin, args, out)))
    runner.start()
    try:
        assert _wait_for(f"{node}: Migrating", buffer, 10), buffer.getvalue()
        assert "eta: ETA unknown (no node completed yet)" in buffer.getvalue()
        listed = Counter(requests)["list"]
        set_refresh_status(c, child, {"phase": "Retiring"})
        assert _wait_for(f"{node}: Retiring", buffer, 5), buffer.getvalue()
    finally:
        runner.join(30)
    assert code == [3], buffer.getvalue()  # still running when --timeout ended the watch
    counted = Counter(requests)
    # One list per stream (the plan, its HostRefreshes), made before the first line; none after. A
    # poll each second over the 6 s would have listed the children 6 times.
    assert listed == 2 and counted["list"] == 2, requests
    assert counted["watch"] >= 2, requests
