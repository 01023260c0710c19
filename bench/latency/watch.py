"""The bench's own watch: every HostRefresh event, timestamped the moment it arrives.

Latencies "from watch receipt" are differences of these timestamps (and of the agent's ``updatedAt``
stamp, taken on the same machine clock). The watch also keeps, per group of refreshes (a plan, or
``-`` for standalone ones), the most refreshes seen in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import Client

from hostrefresh.api import Directive
from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.api.phases import TERMINAL
from hostrefresh.kube.resources import HostRefreshResource

#: Directives under which a refresh counts as started, as the operator counts it (a PeerView's
#: ``started``): in flight from then until its phase is terminal.
STARTED = (Directive.PROCEED, Directive.ROLL_BACK)


@dataclass
class Seen:
    t: float  # wall clock at receipt (same clock as the agent's updatedAt)
    phase: str | None
    directive: str | None
    agent_updated: str | None
    agent_step: str | None
    agent_state: str | None
    plan: str | None


@dataclass
class Watcher:
    client: Client
    events: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    max_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _state: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    thread: threading.Thread | None = None

    def start(self) -> Watcher:
        self.thread = threading.Thread(target=self._loop, daemon=True, name="watch")
        self.thread.start()
        return self

    def _loop(self) -> None:
        version: str | None = None
        while not self.stop.is_set():
            try:
                for _, obj in self.client.watch(HostRefreshResource, resource_version=version, server_timeout=30):
                    t = time.time()
                    body: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
                    self._observe(t, body)
                    version = body["metadata"]["resourceVersion"]
                    if self.stop.is_set():
                        return
            except Exception:  # a broken watch resumes from the last version seen
                time.sleep(0.05)

    def _observe(self, t: float, body: dict[str, Any]) -> None:
        status = body.get("status") or {}
        agent = status.get("agent") or {}
        plan = (body["metadata"].get("labels") or {}).get(PLAN_LABEL)
        name = body["metadata"]["name"]
        seen = Seen(
            t,
            status.get("phase"),
            status.get("directive"),
            agent.get("updatedAt"),
            agent.get("step"),
            agent.get("stepState"),
            plan,
        )
        with self.lock:
            self.events[name].append(seen)
            self._state[name] = (seen.plan, seen.directive, seen.phase)
            group = plan or "-"
            active = sum(
                1 for p, d, ph in self._state.values() if (p or "-") == group and d in STARTED and ph not in TERMINAL
            )
            self.max_in_flight[group] = max(self.max_in_flight[group], active)

    def snapshot(self, names: Iterable[str]) -> dict[str, list[Seen]]:
        with self.lock:
            return {n: list(self.events.get(n, [])) for n in names}


def dump_events(path: Path, events: dict[str, list[Seen]]) -> None:
    """Every watch event as seen (kept with ``--keep``, for looking at latency over time)."""
    with open(path, "w") as out:
        for name, seq in events.items():
            for e in seq:
                out.write(json.dumps({"name": name, **e.__dict__}) + "\n")
