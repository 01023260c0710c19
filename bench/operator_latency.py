"""Operator latency with 100 refreshes in flight, and API requests made by the operator per node refresh.

Three figures (issue 5), each measured against a real kube-apiserver + etcd with the real operator and
agent processes (simulated nodes: simulated L0, fake sysfs, simulated VMs):

1. report -> status: from an agent's report (``status.agent.updatedAt``, stamped by the agent just
   before its PATCH) to the first watch event whose operator-written ``status.phase`` reflects it;
2. slot free -> next grant: in a RefreshPlan with ``maxUnavailable`` slots and more nodes than that,
   from a child reaching a terminal phase (watch receipt) to the next child's ``directive: Proceed``
   (watch receipt);
3. API requests by the operator's identity per node refresh, counted from the API server's audit log
   (and the operator's own ``hostrefresh_operator_api_requests_total`` counter).

Every run starts its own control plane, agent and operator processes in a temporary directory and
stops them. Results go to bench/results/operator_latency.json and .md.

    python bench/operator_latency.py [--refreshes 100] [--plan-nodes 150] [--max-unavailable 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Namespace, Node
from lightkube.types import PatchType
from rich.console import Console
from rich.table import Table

from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.api.phases import FORWARD_STEPS, TERMINAL, Phase
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.cluster import free_port
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.resources import AGENT_COMPONENT_LABEL, HostRefreshResource, RefreshPlanResource
from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.nodeagent.simnode import SimNodeSpec, create_sim_node

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OPERATOR_USER = "hostrefresh-operator"
AGENT_USER = "hostrefresh-agent"
TARGET_MS = 200.0
TERMINAL_NAMES = {str(p) for p in TERMINAL}
ORDER = [str(p) for p in (Phase.PENDING, *FORWARD_STEPS, Phase.SUCCEEDED)]
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["{OPERATOR_USER}", "{AGENT_USER}"]
  - level: None
"""
console = Console()
#: Simulated L0 call durations (seconds, drawn per node, seeded). The simulated L0 answers at once
#: unless told otherwise, which would make a refresh a few milliseconds of work.
#: "host": what a refresh on a real machine spends in the L0: booting the new host (kernel and
#: userspace up to its agent) takes 10-30 s, switching nested virtualization on or off and
#: retiring a host about a second. "compressed": the same refresh squeezed into ~3 s, so that 100
#: refreshes put 10x the write rate of real ones on the API server (a stress test: on 2 shared cores
#: it saturates them, and the latencies then measure the queue, not the operator).
PACES: dict[str, dict[Call, tuple[float, float]]] = {
    "host": {
        Call.NESTED_ENABLE: (0.5, 2.0),
        Call.L1_BOOT: (10.0, 30.0),
        Call.L1_RETIRE: (0.5, 2.0),
        Call.NESTED_DISABLE: (0.5, 2.0),
    },
    "compressed": {
        Call.NESTED_ENABLE: (0.3, 1.5),
        Call.L1_BOOT: (0.3, 1.5),
        Call.NESTED_DISABLE: (0.3, 1.5),
    },
}


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values_s: Iterable[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 1),
        "p90_ms": round(percentile(ms, 0.9), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
        "min_ms": round(min(ms), 1),
    }


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process in its own session; stopped by its own pid only."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, nice: int = 0) -> Proc:
        """Start it; ``nice`` > 0 lowers its CPU priority (every thread of it: nice(1) before exec)."""
        argv = ["nice", "-n", str(nice), *self.argv] if nice > 0 else self.argv
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# The watch: every HostRefresh event, timestamped on receipt


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
                1
                for p, d, ph in self._state.values()
                if (p or "-") == group and d in ("Proceed", "RollBack") and ph not in TERMINAL_NAMES
            )
            self.max_in_flight[group] = max(self.max_in_flight[group], active)

    def snapshot(self, names: Iterable[str]) -> dict[str, list[Seen]]:
        with self.lock:
            return {n: list(self.events.get(n, [])) for n in names}


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def implied_phase(step: str | None, state: str | None) -> str | None:
    """The operator phase an agent report implies (lifecycle.agent_phase)."""
    if step is None:
        return None
    if step == "RollingBack" and state == "Done":
        return "RolledBack"
    if step == "Verifying" and state == "Done":
        return "Succeeded"
    return step


def rank(phase: str | None) -> int:
    return ORDER.index(phase) if phase in ORDER else -1


@dataclass(frozen=True)
class PhaseReport:
    """An agent report that implies an operator phase, as the watch showed it."""

    name: str
    stamped: float  # the agent's updatedAt
    seen: float  # receipt of the first event that carried it
    already_shown: bool  # that event's phase reflects it already: nothing for the operator to do
    reflected: float | None  # receipt of the first event whose phase reflects it


def phase_reports(events: dict[str, list[Seen]]) -> Iterator[PhaseReport]:
    """Every distinct agent report (``updatedAt``) that implies a phase; failures are not counted.

    A report is reflected by the first event whose operator phase is the implied one or a later one
    (a fast agent can make the operator skip a phase; the status then reflects something newer).
    """
    for name, seq in events.items():
        done: set[str] = set()
        for i, ev in enumerate(seq):
            u = ev.agent_updated
            if u is None or u in done:
                continue
            done.add(u)
            want = implied_phase(ev.agent_step, ev.agent_state)
            if ev.agent_state == "Failed" or want is None or rank(want) < 0:
                continue
            reflected = next((e.t for e in seq[i:] if rank(e.phase) >= rank(want)), None)
            yield PhaseReport(name, parse_ts(u), ev.t, rank(ev.phase) >= rank(want), reflected)


def report_latencies(events: dict[str, list[Seen]], since: float = 0.0) -> dict[str, list[float]]:
    """Per agent report that implies a phase change: report -> seen, seen -> reflected, report -> reflected.

    Only reports stamped at or after ``since`` count.
    """
    out: dict[str, list[float]] = {"total": [], "agent_write": [], "operator": [], "noop_reports": []}
    for r in phase_reports(events):
        if r.already_shown:
            out["noop_reports"].append(0.0)
            continue
        if r.reflected is None or r.stamped < since:
            continue
        out["total"].append(r.reflected - r.stamped)
        out["agent_write"].append(r.seen - r.stamped)
        out["operator"].append(r.reflected - r.seen)
    return out


def wave_granted_at(events: dict[str, list[Seen]], wave: int) -> float:
    """Receipt of the ``wave``-th first grant: from then on the first wave is under way in full."""
    grants = sorted(t for seq in events.values() if (t := next((e.t for e in seq if e.directive == "Proceed"), None)))
    return grants[min(wave, len(grants)) - 1] if grants else 0.0


def report_figures(events: dict[str, list[Seen]], wave: int) -> dict[str, Any]:
    """report -> status over the whole run, its parts, and from the moment the first wave was granted."""
    lat = report_latencies(events)
    ramped = wave_granted_at(events, wave)
    return {
        "report_to_status": summary(lat["total"]),
        "report_to_status_parts": {
            "agent_report_to_watch_receipt": summary(lat["agent_write"]),
            "watch_receipt_to_operator_status": summary(lat["operator"]),
        },
        "report_to_status_after_first_wave_granted": summary(report_latencies(events, ramped)["total"]),
        "reports_already_reflected": len(lat["noop_reports"]),
    }


def slot_latencies(events: dict[str, list[Seen]], budget: int) -> dict[str, list[float]]:
    """FIFO: the i-th slot freed (terminal receipt) is taken by the (budget+i)-th grant (Proceed receipt)."""
    frees, grants, created = [], [], {}
    for name, seq in events.items():
        created[name] = seq[0].t if seq else None
        t_free = next((e.t for e in seq if e.phase in TERMINAL_NAMES), None)
        t_grant = next((e.t for e in seq if e.directive == "Proceed"), None)
        if t_free is not None:
            frees.append(t_free)
        if t_grant is not None:
            grants.append((t_grant, created[name] or t_grant))
    frees.sort()
    grants.sort()
    later = grants[budget:]
    out: dict[str, list[float]] = {"total": [], "free_to_created": [], "created_to_grant": []}
    for t_free, (t_grant, t_created) in zip(frees, later, strict=False):
        out["total"].append(t_grant - t_free)
        out["free_to_created"].append(t_created - t_free)
        out["created_to_grant"].append(t_grant - t_created)
    return out


# ---------------------------------------------------------------------------------------------
# The fleet


@dataclass
class Stage:
    """What a scenario runs against; ``started`` is when the operator was started (audit window)."""

    nodes: list[str]
    agent: Proc
    op: Proc
    port: int
    started: float

    def meter(self, cp: ControlPlane) -> CpuMeter:
        return CpuMeter({**cp.pids(), "operator": self.op.pid(), "agent": self.agent.pid()})

    def stop(self) -> None:
        self.op.stop()
        self.agent.stop()


@dataclass
class Bench:
    cp: ControlPlane
    workdir: Path
    client: Client
    latency: dict[Call, tuple[float, float]]
    seed: int
    profile_seconds: int = 0
    operator_args: tuple[str, ...] = ()
    fleet_nice: int = 0

    def target(self) -> dict[str, str]:
        path = self.workdir / "images" / "vmlinuz-2.0"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(b"simulated host kernel 2.0\n" * 64)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"version": "2.0", "kernel": str(path), "checksum": f"sha256:{digest}"}

    def namespace(self, name: str) -> None:
        self.client.create(Namespace(metadata=ObjectMeta(name=name)))

    def fleet(self, prefix: str, n: int) -> list[str]:
        """``n`` Ready nodes and their simulated machines; L0 calls slowed so refreshes overlap."""
        rnd = random.Random(f"{self.seed}-{prefix}")
        nodes = [f"{prefix}-{i:03d}" for i in range(n)]
        root = self.workdir / "nodes"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for node in nodes:
            create_sim_node(root, node, SimNodeSpec(sim_vms=2))
            with open_l0("sim", root / node / "l0.state") as l0:
                for call, (low, high) in self.latency.items():
                    lat = rnd.uniform(low, high)
                    l0.sim_inject_fault(FaultRule(call=call, status=Status.OK, latency_s=lat, times=0))
            self.client.create(Node(metadata=ObjectMeta(name=node, labels={"fleet": prefix})))
            cond = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated node"}
            cond |= {"lastHeartbeatTime": now, "lastTransitionTime": now}
            self.client.patch(Node.Status, node, {"status": {"conditions": [cond]}}, patch_type=PatchType.MERGE)
        return nodes

    def agent(self, name: str, namespace: str, nodes: list[str]) -> Proc:
        argv = [
            sys.executable,
            "-m",
            "hostrefresh.nodeagent.main",
            f"--kubeconfig={self.cp.user_kubeconfig(AGENT_USER, ('system:masters',))}",
            f"--namespace={namespace}",
            f"--sim-root={self.workdir / 'nodes'}",
            f"--sim-nodes={','.join(nodes)}",
            "--lease-seconds=30",
            "--retry-seconds=1",
            f"--identity={name}",
            f"--image-dir={self.workdir / 'images'}",  # where target() puts the image
        ]
        return Proc(name, argv, self.workdir / f"{name}.log").start(nice=self.fleet_nice)

    def operator(self, name: str, namespace: str, metrics_port: int) -> Proc:
        kubeconfig = self.cp.user_kubeconfig(OPERATOR_USER, ("system:masters",))
        argv = [
            sys.executable,
            "-m",
            "hostrefresh.operator.main",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={namespace}",
            "--log-format=plain",
            f"--identity={name}",
            f"--metrics-port={metrics_port}",
            *self.operator_args,
        ]
        return Proc(name, argv, self.workdir / f"{name}.log").start()

    def wait(self, what: str, check: Callable[[], bool], timeout: float, procs: Iterable[Proc] = ()) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited; see {p.log}")
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f}s: {what} (logs in {self.workdir})")

    def stage(self, tag: str, n: int) -> Stage:
        """A namespace, ``n`` simulated nodes, their agent process and a leading operator process."""
        ns = f"bench-{tag}"
        self.namespace(ns)
        nodes = self.fleet(tag, n)
        agent = self.agent(f"agent-{tag}", ns, nodes)
        op: Proc | None = None
        try:
            self.wait("agent leases", lambda: self.leases_ready(ns, n), 120, [agent])
            port = free_port()
            started = time.time()
            op = self.operator(f"operator-{tag}", ns, port)
            self.wait("operator leads", lambda: self.leading(ns, f"operator-{tag}"), 60, [op])
            time.sleep(1.0)
        except BaseException:
            for proc in (op, agent):
                if proc is not None:
                    proc.stop()
            raise
        return Stage(nodes, agent, op, port, started)

    def leases_ready(self, namespace: str, n: int) -> bool:
        leases = self.client.list(Lease, namespace=namespace, labels=dict(AGENT_COMPONENT_LABEL.items()))
        return len(list(leases)) >= n

    def leading(self, namespace: str, identity: str) -> bool:
        try:
            lease = self.client.get(Lease, "hostrefresh-operator", namespace=namespace)
        except Exception:
            return False
        return lease.spec is not None and lease.spec.holderIdentity == identity


def scrape(port: int) -> dict[str, float]:
    """The operator's own counters (and reconcile time) from its Prometheus endpoint."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith(("hostrefresh_operator_api_requests_total{", "hostrefresh_reconcile_duration_seconds_")):
            key, _, value = line.rpartition(" ")
            if "_bucket" not in key:
                out[key] = float(value)
    return out


def dump_events(path: Path, events: dict[str, list[Seen]]) -> None:
    """Every watch event as seen (kept with ``--keep``, for looking at latency over time)."""
    with open(path, "w") as out:
        for name, seq in events.items():
            for e in seq:
                out.write(json.dumps({"name": name, **e.__dict__}) + "\n")


def object_size(client: Client, name: str, keep: Path | None = None) -> dict[str, int]:
    """JSON size of a finished HostRefresh and of its managedFields: the API server's cost per write grows with it.

    ``keep``: also write the object there, to see what the bytes are.
    """
    body: dict[str, Any] = client.get(HostRefreshResource, name).to_dict()  # type: ignore[no-untyped-call]
    if keep is not None:
        keep.write_text(json.dumps(body, indent=1))
    managed = body["metadata"].get("managedFields") or []
    return {
        "bytes": len(json.dumps(body, separators=(",", ":"))),
        "managed_fields_bytes": len(json.dumps(managed, separators=(",", ":"))),
        "status_bytes": len(json.dumps(body.get("status") or {}, separators=(",", ":"))),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_speed(repeats: int = 9, loop: int = 1_000_000) -> dict[str, float]:
    """Time a fixed pure-Python loop (ms; best and median of ``repeats``) while the scenario is idle.

    The cores of this machine are shared with others: the same loop takes up to half again as long
    from one minute to the next. Recorded with each scenario so that runs can be compared fairly.
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sum(range(loop))
        times.append((time.perf_counter() - t0) * 1000)
    return {"best_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1)}


class CpuMeter:
    """CPU used by each process of a scenario (control plane, operator, agent, this bench) between
    ``start`` and ``stop``: shows who saturates the shared cores."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.t0 = 0.0
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.speed: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out["bench"] = cpu_seconds(os.getpid())
        return out

    def start(self) -> None:
        self.speed = machine_speed()
        self.t0, self.before = time.monotonic(), self._sample()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        after = self._sample()
        used = {k: round(after[k] - self.before.get(k, 0.0), 1) for k in after}
        return {
            "wall_s": round(wall, 1),
            "cpu_s": used,
            "cores": {k: round(v / wall, 2) for k, v in used.items()},
            "speed_before": self.speed,
        }


def apiserver_profile(cp: ControlPlane, seconds: int, out: Path) -> threading.Thread:
    """Fetch a ``seconds`` CPU profile of kube-apiserver (pprof) into ``out``, in the background.

    Read it with ``go tool pprof -top <kube-apiserver binary> <out>``.
    """
    assert cp.pki is not None
    pki = cp.workdir / "pki"

    def fetch() -> None:
        ctx = ssl.create_default_context(cafile=str(cp.pki.ca_cert))  # type: ignore[union-attr]
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        url = f"{cp.url}/debug/pprof/profile?seconds={seconds}"
        with urllib.request.urlopen(url, context=ctx, timeout=seconds + 30) as resp:
            out.write_bytes(resp.read())

    thread = threading.Thread(target=fetch, daemon=True, name="pprof")
    thread.start()
    return thread


@dataclass(frozen=True)
class Write:
    """One status PATCH of a HostRefresh as the API server's audit log shows it."""

    received: float  # requestReceivedTimestamp
    done: float  # stageTimestamp of ResponseComplete: the write is stored


def status_writes(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, list[Write]]]:
    """``user -> HostRefresh name -> status patches`` (successful ones, by time received)."""
    out: dict[str, dict[str, list[Write]]] = {OPERATOR_USER: defaultdict(list), AGENT_USER: defaultdict(list)}
    for rec in records:
        ref = rec.get("objectRef") or {}
        user = rec.get("user", {}).get("username")
        if user not in out or rec["verb"] != "patch":
            continue
        if ref.get("resource") != "hostrefreshes" or ref.get("subresource") != "status":
            continue
        if (rec.get("responseStatus") or {}).get("code", 0) >= 300:
            continue
        write = Write(parse_ts(rec["requestReceivedTimestamp"]), parse_ts(rec["stageTimestamp"]))
        out[user][ref["name"]].append(write)
    for by_name in out.values():
        for writes in by_name.values():
            writes.sort(key=lambda w: w.received)
    return out


def _write_behind(writes: list[Write], seen_at: float) -> Write | None:
    """The write whose watch event was received at ``seen_at``: the last one sent before it."""
    return next((w for w in reversed(writes) if w.received <= seen_at), None)


def server_side(events: dict[str, list[Seen]], records: Iterable[dict[str, Any]], budget: int | None) -> dict[str, Any]:
    """The two latencies on the API server's clock (audit log), free of when a watcher got a CPU.

    report -> status: from the agent's report being stored (its PATCH answered) to the operator's
    status that reflects it being stored. slot free -> grant: from the operator's write of a child's
    final phase being stored to the write of the next child's Proceed being stored (FIFO, as
    ``slot_latencies``). Writes are matched to watch events by name and time; a report whose
    writes cannot be matched is left out (counted in ``unmatched``).
    """
    writes = status_writes(records)
    agent_w, op_w = writes[AGENT_USER], writes[OPERATOR_USER]
    reports: list[float] = []
    unmatched = 0
    for r in phase_reports(events):
        if r.already_shown:
            continue
        report = next((w for w in agent_w.get(r.name, []) if w.received >= r.stamped - 0.002), None)
        status = _write_behind(op_w.get(r.name, []), r.reflected) if r.reflected is not None else None
        if report is None or status is None or status.received < report.received:
            unmatched += 1
            continue
        reports.append(status.done - report.done)
    out: dict[str, Any] = {"report_to_status": summary(reports), "unmatched_reports": unmatched}
    if budget is not None:
        frees, grants = [], []
        for name, seq in events.items():
            t_free = next((e.t for e in seq if e.phase in TERMINAL_NAMES), None)
            t_grant = next((e.t for e in seq if e.directive == "Proceed"), None)
            free = _write_behind(op_w.get(name, []), t_free) if t_free is not None else None
            grant = _write_behind(op_w.get(name, []), t_grant) if t_grant is not None else None
            if free is not None:
                frees.append(free.done)
            if grant is not None:
                grants.append(grant.done)
        frees.sort()
        grants.sort()
        slots = [g - f for f, g in zip(frees, grants[budget:], strict=False)]
        out["slot_free_to_grant"] = summary(slots)
    return out


def audit_records(log: Path) -> Iterator[dict[str, Any]]:
    """Each request in the audit log once (a request has a line per stage, with the same auditID)."""
    seen: set[str] = set()
    if not log.exists():
        return
    with open(log) as f:
        for line in f:
            rec: dict[str, Any] = json.loads(line)
            if rec["auditID"] not in seen:
                seen.add(rec["auditID"])
                yield rec


def audit_counts(
    records: Iterable[dict[str, Any]], since: float, until: float, user: str = OPERATOR_USER
) -> Counter[str]:
    """Requests by the operator's user in [since, until], by verb and resource[/subresource]."""
    counts: Counter[str] = Counter()
    for rec in records:
        if rec.get("user", {}).get("username") != user:
            continue
        if not since <= parse_ts(rec["requestReceivedTimestamp"]) <= until:
            continue
        ref = rec.get("objectRef") or {}
        resource = ref.get("resource") or "(API discovery)"
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        code = (rec.get("responseStatus") or {}).get("code", 0)
        failed = f" → {code}" if code >= 400 and code not in (404,) else ""
        counts[f"{rec['verb']} {resource}{failed}"] += 1
    return counts


def per_refresh(counts: Counter[str], n: int) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "requests": total,
        "refreshes": n,
        "per_refresh": round(total / n, 2) if n else None,
        "by_verb_resource": {k: {"count": v, "per_refresh": round(v / n, 2)} for k, v in counts.most_common()},
    }


# ---------------------------------------------------------------------------------------------
# Scenarios


def run_standalone(b: Bench, watcher: Watcher, audit: Path, n: int, tag: str) -> dict[str, Any]:
    """``n`` HostRefresh objects created at once for ``n`` nodes: report -> status latency."""
    st = b.stage(tag, n)
    try:
        target = b.target()
        nodes = st.nodes
        names = [f"{tag}-hr-{i:03d}" for i in range(n)]
        objs = [
            {
                "apiVersion": "hostrefresh.io/v1alpha1",
                "kind": "HostRefresh",
                "metadata": {"name": name},
                "spec": {"nodeName": node, "target": target, "partition": {"cpus": 2, "memory": "1Gi"}},
            }
            for name, node in zip(names, nodes, strict=True)
        ]
        meter = st.meter(b.cp)
        meter.start()
        if b.profile_seconds:
            apiserver_profile(b.cp, b.profile_seconds, b.workdir / f"apiserver-{tag}.pprof")
        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:  # all at once, so that all of them are in flight together
            list(pool.map(lambda o: b.client.create(HostRefreshResource.from_dict(o)), objs))
        console.log(f"[{tag}] {n} HostRefresh created in {time.time() - t0:.1f}s; waiting for all to end")

        def all_done() -> bool:
            snap = watcher.snapshot(names)
            return all(seq and seq[-1].phase in TERMINAL_NAMES for seq in snap.values())

        b.wait(f"{n} refreshes end", all_done, 600, [st.op, st.agent])
        duration = time.time() - t0
        cpu = meter.stop()
        size = object_size(b.client, names[0], b.workdir / f"finished-{names[0]}.json")
        time.sleep(2.0)  # let trailing writes (node unmarks, events) land before counting
        metrics = scrape(st.port)
    finally:
        st.stop()
    t_end = time.time()
    events = watcher.snapshot(names)
    dump_events(b.workdir / f"events-{tag}.jsonl", events)
    requests = list(audit_records(audit))  # read once: request counts and the latencies' writes
    phases = Counter(seq[-1].phase for seq in events.values())
    return {
        "refreshes": n,
        "results": dict(phases),
        "max_in_flight": watcher.max_in_flight["-"],
        "duration_s": round(duration, 1),
        "cpu": cpu,
        **report_figures(events, n),
        "at_api_server": server_side(events, requests, None),
        "finished_object": size,
        "api": per_refresh(audit_counts(requests, st.started, t_end), n),
        "agent_api": per_refresh(audit_counts(requests, st.started, t_end, AGENT_USER), n),
        "operator_metrics": metrics,
    }


def run_plan(b: Bench, watcher: Watcher, audit: Path, n: int, budget: int, tag: str) -> dict[str, Any]:
    """A RefreshPlan over ``n`` nodes with ``budget`` slots: slot free -> next grant latency."""
    st = b.stage(tag, n)
    try:
        plan = {
            "apiVersion": "hostrefresh.io/v1alpha1",
            "kind": "RefreshPlan",
            "metadata": {"name": tag},
            "spec": {
                "nodeSelector": {"matchLabels": {"fleet": tag}},
                "target": b.target(),
                "template": {"partition": {"cpus": 2, "memory": "1Gi"}},
                "maxUnavailable": budget,
                "canary": 0,
                "soakSeconds": 0,
            },
        }
        meter = st.meter(b.cp)
        meter.start()
        if b.profile_seconds:
            apiserver_profile(b.cp, b.profile_seconds, b.workdir / f"apiserver-{tag}.pprof")
        t0 = time.time()
        b.client.create(RefreshPlanResource.from_dict(plan))

        def children() -> dict[str, list[Seen]]:
            with watcher.lock:
                names = [k for k, v in watcher.events.items() if v and v[0].plan == tag]
            return watcher.snapshot(names)

        def all_done() -> bool:
            snap = children()
            return len(snap) == n and all(seq[-1].phase in TERMINAL_NAMES for seq in snap.values())

        b.wait(f"plan over {n} nodes ends", all_done, 600, [st.op, st.agent])
        duration = time.time() - t0
        cpu = meter.stop()
        time.sleep(2.0)
        metrics = scrape(st.port)
    finally:
        st.stop()
    t_end = time.time()
    events = children()
    dump_events(b.workdir / f"events-{tag}.jsonl", events)
    requests = list(audit_records(audit))  # read once: request counts and the latencies' writes
    lat = slot_latencies(events, budget)
    return {
        "nodes": n,
        "max_unavailable": budget,
        "results": dict(Counter(seq[-1].phase for seq in events.values())),
        "max_in_flight": watcher.max_in_flight[tag],
        "duration_s": round(duration, 1),
        "cpu": cpu,
        "slot_free_to_grant": summary(lat["total"]),
        **report_figures(events, budget),
        "at_api_server": server_side(events, requests, budget),
        "slot_free_to_grant_parts": {
            "free_to_child_created": summary(lat["free_to_created"]),
            "child_created_to_grant": summary(lat["created_to_grant"]),
        },
        "api": per_refresh(audit_counts(requests, st.started, t_end), n),
        "agent_api": per_refresh(audit_counts(requests, st.started, t_end, AGENT_USER), n),
        "operator_metrics": metrics,
    }


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hostrefresh-oplat-"))
    audit = workdir / "audit.log"
    policy = workdir / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    extra = [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit}",
        "--audit-log-format=json",
        "--audit-log-mode=batch",
    ]
    if args.apiserver_profile:
        extra.append("--profiling=true")
    cp = ControlPlane(workdir / "cp", extra_args=extra)
    try:
        cp.start()
        cp.install_crds()
        client = sync_client(cp.kubeconfig, field_manager="bench")
        b = Bench(
            cp,
            workdir,
            client,
            PACES[args.pace],
            args.seed + run,
            args.apiserver_profile,
            tuple(args.operator_arg),
            args.fleet_nice,
        )
        watcher = Watcher(sync_client(cp.kubeconfig, field_manager="bench-watch")).start()
        console.log(f"run {run}: control plane up in {workdir}")
        out: dict[str, Any] = {"run": run}
        if "hr" in args.scenarios:
            out["standalone"] = run_standalone(b, watcher, audit, args.refreshes, "hr")
            console.log(f"run {run}: standalone done: report->status {_fmt(out['standalone']['report_to_status'])}")
        if "plan" in args.scenarios:
            out["plan"] = run_plan(b, watcher, audit, args.plan_nodes, args.max_unavailable, "plan")
            console.log(f"run {run}: plan done: slot->grant {_fmt(out['plan']['slot_free_to_grant'])}")
        watcher.stop.set()
        return out
    finally:
        cp.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Output


def _fmt(s: dict[str, Any]) -> str:
    if not s.get("n"):
        return "no samples"
    return f"p50 {s['p50_ms']:.0f} / p99 {s['p99_ms']:.0f} / max {s['max_ms']:.0f} ms (n={s['n']})"


def _dig(r: dict[str, Any], *path: str) -> Any:
    """``r[path...]`` or {} when a scenario was not run."""
    cur: Any = r
    for key in path:
        cur = cur.get(key, {}) if isinstance(cur, dict) else {}
    return cur


def _cell(s: dict[str, Any]) -> str:
    return f"{s['p50_ms']} / {s['p99_ms']} / {s['max_ms']} ms ({s['n']})" if s.get("n") else "-"


def print_tables(runs: list[dict[str, Any]]) -> None:
    table = Table(title="operator latency (watch receipt)")
    for col in ("run", "report -> status", "slot free -> grant", "in flight", "API req/refresh (hr / plan)"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            str(r["run"]),
            _fmt(_dig(r, "standalone", "report_to_status")),
            _fmt(_dig(r, "plan", "slot_free_to_grant")),
            f"{_dig(r, 'standalone').get('max_in_flight', '-')} / {_dig(r, 'plan').get('max_in_flight', '-')}",
            f"{_dig(r, 'standalone', 'api').get('per_refresh', '-')} / {_dig(r, 'plan', 'api').get('per_refresh', '-')}",
        )
    console.print(table)
    last = runs[-1]
    for key in ("standalone", "plan"):
        if key not in last:
            continue
        t = Table(title=f"API requests by {OPERATOR_USER} ({key}, run {last['run']})")
        t.add_column("verb resource")
        t.add_column("count", justify="right")
        t.add_column("per refresh", justify="right")
        for k, v in last[key]["api"]["by_verb_resource"].items():
            t.add_row(k, str(v["count"]), f"{v['per_refresh']:.2f}")
        console.print(t)


SCENARIOS = (("standalone", "100 HostRefresh created at once"), ("plan", "RefreshPlan, 150 nodes, maxUnavailable 100"))


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    runs = data["runs"]
    lines = [
        "# Operator latency with 100 refreshes in flight",
        "",
        f"`{data['command']}` on {data['machine']['cpus']} shared cores ({data['machine']['platform']}), "
        f"{data['recorded_at']}{' (' + data['label'] + ')' if data['label'] else ''}, pace `{data['pace']}`. "
        f"Target: p99 < {TARGET_MS:.0f} ms for both latencies. Cells: p50 / p99 / max ms (samples).",
        "",
        "| run | scenario | report → status | same, once the first wave is granted | slot free → grant "
        "| max in flight | requests per refresh: operator / agent |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            sc = _dig(r, key)
            if not sc:
                continue
            lines.append(
                f"| {r['run']} | {title} | {_cell(_dig(sc, 'report_to_status'))} "
                f"| {_cell(_dig(sc, 'report_to_status_after_first_wave_granted'))} "
                f"| {_cell(_dig(sc, 'slot_free_to_grant'))} | {sc.get('max_in_flight', '-')} "
                f"| {_dig(sc, 'api').get('per_refresh', '-')} / {_dig(sc, 'agent_api').get('per_refresh', '-')} |"
            )
    lines += [
        "",
        "Where the time goes:",
        "",
        "| run | scenario | agent report → bench watch | bench watch → operator status | slot free → child created "
        "| child created → Proceed |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            sc = _dig(r, key)
            if not sc:
                continue
            parts = [
                _dig(sc, "report_to_status_parts", "agent_report_to_watch_receipt"),
                _dig(sc, "report_to_status_parts", "watch_receipt_to_operator_status"),
                _dig(sc, "slot_free_to_grant_parts", "free_to_child_created"),
                _dig(sc, "slot_free_to_grant_parts", "child_created_to_grant"),
            ]
            lines.append(f"| {r['run']} | {title} | " + " | ".join(_cell(c) for c in parts) + " |")
    lines += [
        "",
        "The same two latencies on the API server's clock (audit log): from the agent's report being stored to the "
        "operator's status that reflects it being stored, and from a child's final phase being stored to the next "
        "child's Proceed being stored. They leave out when the agent and the bench's watcher got a CPU:",
        "",
        "| run | scenario | report → status | slot free → grant | reports not matched to writes |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            srv = _dig(r, key, "at_api_server")
            if srv:
                lines.append(
                    f"| {r['run']} | {title} | {_cell(_dig(srv, 'report_to_status'))} "
                    f"| {_cell(_dig(srv, 'slot_free_to_grant'))} | {srv.get('unmatched_reports', '-')} |"
                )
    names = ("kube-apiserver", "etcd", "operator", "agent", "bench")
    lines += [
        "",
        "CPU used while the scenario ran (cores, averaged over its duration; the agent process simulates every node),"
        " and the machine's speed just before it (a fixed Python loop, best / median of 9, ms: the cores are shared"
        " with other machines, so the same work takes longer at busy times):",
        "",
        "| run | scenario | duration | " + " | ".join(names) + " | speed loop |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for r in runs:
        for key, title in SCENARIOS:
            cpu = _dig(r, key, "cpu")
            if cpu:
                cores = cpu["cores"]
                cells = " | ".join(str(cores.get(n, "-")) for n in names)
                speed = cpu.get("speed_before")
                loop = f"{speed['best_ms']} / {speed['median_ms']}" if speed else "-"
                lines.append(f"| {r['run']} | {title} | {cpu['wall_s']} s | {cells} | {loop} |")
    last = runs[-1]
    size = _dig(last, "standalone", "finished_object")
    if size:
        lines += [
            "",
            f"A finished HostRefresh is {size['bytes']} bytes of JSON ({size['status_bytes']} of status, "
            f"{size['managed_fields_bytes']} of managedFields).",
        ]
    for key, title in SCENARIOS:
        if key not in last:
            continue
        for api_key, user in (("api", OPERATOR_USER), ("agent_api", AGENT_USER)):
            api = last[key].get(api_key)
            if not api:
                continue
            lines += [
                "",
                f"API requests by `{user}` (audit log), {title}, run {last['run']}: "
                f"{api['requests']} for {api['refreshes']} refreshes = **{api['per_refresh']} per refresh** "
                f"(results: {last[key]['results']})",
                "",
                "| verb resource | count | per refresh |",
                "|---|---|---|",
            ]
            lines += [f"| {k} | {v['count']} | {v['per_refresh']} |" for k, v in api["by_verb_resource"].items()]
    notes = ROOT / "bench" / "results" / "operator_latency.notes.md"
    if notes.exists() and path.resolve() == notes.with_name("operator_latency.md"):
        lines += ["", notes.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refreshes", type=int, default=100, help="standalone HostRefresh objects in flight")
    parser.add_argument("--plan-nodes", type=int, default=150, help="nodes of the RefreshPlan")
    parser.add_argument("--max-unavailable", type=int, default=100, help="the plan's maxUnavailable")
    parser.add_argument("--runs", type=int, default=1, help="repetitions, each on a fresh control plane")
    parser.add_argument(
        "--pace",
        choices=sorted(PACES),
        default="host",
        help="simulated L0 call durations: 'host' (a host boot takes 10-30 s) or 'compressed' (a stress test)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="", help="a label stored with the results")
    parser.add_argument("--out", type=Path, default=RESULTS / "operator_latency.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, audit log)")
    parser.add_argument(
        "--apiserver-profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="record a kube-apiserver CPU profile of the first SECONDS of each scenario (implies --keep)",
    )
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra operator flag, e.g. --operator-arg=--max-starts-per-second=5 (repeatable)",
    )
    parser.add_argument("--scenarios", default="hr,plan", help="hr (standalone refreshes), plan, or both")
    parser.add_argument(
        "--fleet-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the simulated fleet (the one agent process standing in for every node) at nice N: in a real "
        "fleet its work is spread over the nodes and takes no CPU from the control plane or the operator",
    )
    args = parser.parse_args(argv)
    args.keep = args.keep or bool(args.apiserver_profile)
    # SIGTERM runs the clean-up (operator, agent, control plane) like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    runs = [one_run(args, i + 1) for i in range(args.runs)]
    data = {
        "label": args.label,
        "command": "python bench/operator_latency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "target_ms": TARGET_MS,
        "pace": args.pace,
        "fleet_nice": args.fleet_nice,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    write_markdown(args.out.with_suffix(".md"), data)
    print_tables(runs)
    console.log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
