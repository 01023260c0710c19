"""What the agent writes while it drives a refresh (its Kubernetes writes recorded, not sent).

At most one write per step: a finished step's results travel with the next step's start, and a step
quicker than ``report_running_after`` is not reported Running at all. The old host's last report
(Retiring Done), the end (Verifying Done) and anything held when the agent has to wait (paused,
rollback ordered) are written on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hostrefresh.api import FORWARD_STEPS, AgentStatus, HostRefreshSpec, Phase, StepState
from hostrefresh.l0 import Call, FaultRule, L0Error, Status, open_l0
from hostrefresh.nodeagent.agent import NodeAgent, SwitchoverError
from hostrefresh.nodeagent.report import Reporter
from hostrefresh.nodeagent.steps import STEPS
from hostrefresh.sim.node import SimNodeSpec, create_sim_node, open_sim_node

from .images import image_store, target_image


class RecordingReporter:
    """Stands in for ``Reporter``: keeps every ``status.agent`` the agent would have written."""

    def __init__(self) -> None:
        self.writes: list[AgentStatus] = []
        self.names: set[str] = set()
        self.order: list[str] = []  # the refresh of each write
        self.server: dict[str, dict[str, Any]] = {}  # what a fresh read returns; absent: still granted

    async def report(self, name: str, agent: AgentStatus) -> None:
        self.names.add(name)
        self.order.append(name)
        self.writes.append(agent.model_copy(deep=True))

    async def read(self, name: str) -> dict[str, Any] | None:
        granted = {"metadata": {"name": name}, "status": {"phase": "Retiring", "directive": "Proceed"}}
        return self.server.get(name, granted)


def _body(tmp_path: Path, *, paused: bool = False, directive: str = "Proceed") -> dict[str, Any]:
    spec = {
        "nodeName": "n1",
        "target": target_image(tmp_path),
        "partition": {"cpus": 2, "memory": "1Gi"},
        "paused": paused,
    }
    return {"metadata": {"name": "hr"}, "spec": spec, "status": {"phase": "Preflight", "directive": directive}}


def _agent(tmp_path: Path, reporter: RecordingReporter | Reporter, report_running_after: float = 0.0) -> NodeAgent:
    create_sim_node(tmp_path, "n1", SimNodeSpec(cpus=8, memory_blocks=32, sim_vms=2))
    runtime = open_sim_node(tmp_path, "n1", images=image_store(tmp_path))
    return NodeAgent(runtime, reporter, "test/n1", 0.05, report_running_after)  # type: ignore[arg-type]


def _finished(reporter: RecordingReporter) -> bool:
    last = reporter.writes[-1] if reporter.writes else None
    return last is not None and last.step == Phase.VERIFYING and last.step_state == StepState.DONE


async def _drive_until(agent: NodeAgent, done: Any, timeout: float = 20.0) -> None:
    """Run the agent (and its successor after the switchover) until ``done()``."""

    async def loop() -> None:
        current = agent
        while not done():
            task = asyncio.create_task(current.run())
            while not task.done() and not done():
                await asyncio.sleep(0.01)
            if task.done():
                with contextlib.suppress(SwitchoverError):
                    task.result()
                successor = NodeAgent(
                    current.rt, current.reporter, "test/n1/gen1", current.retry_seconds, current.report_running_after
                )
                for name, body in current.known().items():
                    successor.update(body, name)
                current = successor
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    await asyncio.wait_for(loop(), timeout)


def test_one_write_per_step_and_results_travel_with_the_next_start(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter)
    agent.update(_body(tmp_path), "hr")
    asyncio.run(_drive_until(agent, lambda: _finished(reporter)))
    seen = [(w.step, w.step_state) for w in reporter.writes]
    expected = [(step, StepState.RUNNING) for step in FORWARD_STEPS]
    expected.insert(FORWARD_STEPS.index(Phase.RETIRING) + 1, (Phase.RETIRING, StepState.DONE))
    expected.append((Phase.VERIFYING, StepState.DONE))
    assert seen == expected
    by_step = {w.step: w for w in reporter.writes if w.step_state == StepState.RUNNING}
    # NestedEnabling's result (nested on) arrives with BootingTarget's start, and its message says so
    assert by_step[Phase.BOOTING_TARGET].nested_since is not None
    assert by_step[Phase.BOOTING_TARGET].message.startswith("NestedEnabling done: ")
    assert by_step[Phase.RETIRING].vms and all(vm.result == "HandedOver" for vm in by_step[Phase.RETIRING].vms)


def test_a_held_report_is_sent_before_the_agent_waits(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter)
    agent.update(_body(tmp_path), "hr")

    async def scenario() -> None:
        task = asyncio.create_task(agent.run())
        while not any(w.step == Phase.NESTED_ENABLING for w in reporter.writes):
            await asyncio.sleep(0.005)
        body = agent.known()["hr"]
        agent.update({**body, "spec": {**body["spec"], "paused": True}}, "hr")  # pause between steps
        await asyncio.sleep(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    last = reporter.writes[-1]
    # the step that was running when the pause arrived finished; its Done was written, not lost
    assert last.step_state == StepState.DONE, [(w.step, w.step_state, w.message) for w in reporter.writes]
    assert last.message == "paused between steps"
    assert agent.known()["hr"]["status"]["agent"]["stepState"] == "Done"


def test_quick_steps_are_not_reported_running(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter, report_running_after=0.3)
    with open_l0("sim", tmp_path / "n1" / "l0.state") as l0:  # only the new host's boot takes a while
        l0.sim_inject_fault(FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=1.0, times=0))
    agent.update(_body(tmp_path), "hr")
    asyncio.run(_drive_until(agent, lambda: _finished(reporter)))
    seen = [(w.step, w.step_state) for w in reporter.writes]
    assert seen == [
        (Phase.BOOTING_TARGET, StepState.RUNNING),
        # Retiring may end the old host at once: what the agent holds is written before it starts.
        (Phase.RETIRING, StepState.RUNNING),
        (Phase.RETIRING, StepState.DONE),
        (Phase.VERIFYING, StepState.DONE),
    ]
    booting = reporter.writes[0]
    assert booting.message.startswith("NestedEnabling done: ") and booting.nested_since is not None
    retiring = reporter.writes[1]
    assert retiring.message.startswith("Migrating done: ") and len(retiring.vms) == 2, retiring


def test_an_object_stored_before_the_checksum_was_required_is_left_alone(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter)
    old = _body(tmp_path)
    del old["spec"]["target"]["checksum"]
    agent.update(old, "a-old")  # looked at first (by name)
    agent.update(_body(tmp_path), "hr")  # the node's valid refresh still runs: the agent did not crash
    asyncio.run(_drive_until(agent, lambda: _finished(reporter)))
    assert reporter.names == {"hr"}


def test_an_error_outside_a_step_is_retried_and_never_writes_over_a_failed_steps_report(tmp_path: Path) -> None:
    """A refused retire waits for the operator's rollback; an L0 query failing meanwhile must not erase
    the reason (RetireRefused) the operator's choice depends on, nor stop the agent."""
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter)
    body = _body(tmp_path)
    body["status"]["agent"] = {"step": "Retiring", "stepState": "Failed", "failureReason": "RetireRefused"}
    agent.update(body, "hr")
    calls = 0

    async def failing(target_sha: bytes | None) -> Any:
        nonlocal calls
        calls += 1
        raise L0Error(0, None, "simulated L0: query failed")

    agent.rt.observe = failing  # type: ignore[method-assign]

    async def scenario() -> None:
        task = asyncio.create_task(agent.run())
        while calls < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 20))
    assert calls >= 3, "the agent stopped after an error outside a step"
    assert reporter.writes == [], [w.message for w in reporter.writes]


class OutageClient:
    """Stands in for the API client under ``Reporter``: every report meets an outage first (the
    connection refused, then a 503) before the API server answers it."""

    def __init__(self, failures_per_report: int = 2) -> None:
        self.failures_per_report = failures_per_report
        self.failed = 0
        self.pending = failures_per_report
        self.written: list[dict[str, Any]] = []

    async def patch(self, resource: Any, name: str, body: dict[str, Any], patch_type: Any = None) -> None:
        if self.pending > 0:
            self.pending -= 1
            self.failed += 1
            raise ConnectionRefusedError("kube-apiserver is restarting")
        self.pending = self.failures_per_report
        self.written.append(body["status"]["agent"])

    async def get(self, resource: Any, name: str) -> Any:
        """A fresh read (before the point of no return) meets the outage too, then says: still granted."""
        if self.pending > 0:
            self.pending -= 1
            self.failed += 1
            raise ConnectionRefusedError("kube-apiserver is restarting")
        granted = {"metadata": {"name": name}, "status": {"phase": "Retiring", "directive": "Proceed"}}
        return SimpleNamespace(to_dict=lambda: granted)


def test_reports_that_meet_an_outage_are_sent_again_and_no_step_fails(tmp_path: Path) -> None:
    """Every report of a whole refresh meets a restarting API server: the refresh still finishes, and
    no report ever says a step failed (the issue this guards: "BootingTarget failed (AgentError):
    RemoteProtocolError" while kube-apiserver restarted)."""
    client = OutageClient()
    reporter = Reporter(client, max_retry_delay=0.02)  # type: ignore[arg-type]
    agent = _agent(tmp_path, reporter)
    agent.update(_body(tmp_path), "hr")

    def finished() -> bool:
        last = client.written[-1] if client.written else None
        return last is not None and (last["step"], last["stepState"]) == ("Verifying", "Done")

    asyncio.run(_drive_until(agent, finished))
    states = [(w["step"], w["stepState"]) for w in client.written]
    assert all(state != "Failed" for _, state in states), states
    assert client.failed >= 2 * len(client.written)  # every report did meet the outage


def test_a_refresh_failed_by_the_operator_past_the_point_of_no_return_is_finished_by_the_agent(
    tmp_path: Path,
) -> None:
    """The operator declared the refresh Failed (its agent silent too long) just after the retire: only
    going forward ends the node, so the agent does, whatever the operator's verdict."""
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter)
    agent.update(_body(tmp_path), "hr")

    def retired() -> bool:
        return any(w.step == Phase.RETIRING and w.step_state == StepState.DONE for w in reporter.writes)

    asyncio.run(_drive_until(agent, retired))
    last = reporter.writes[-1]
    assert (last.step, last.step_state) == (Phase.RETIRING, StepState.DONE)
    body = _body(tmp_path)
    body["status"] = {"phase": "Failed", "directive": "Proceed", "agent": last.to_json()}
    successor = NodeAgent(agent.rt, agent.reporter, "test/n1/gen1", 0.05, 0.0)  # the old host's agent is gone
    successor.update(body, "hr")
    asyncio.run(_drive_until(successor, lambda: _finished(reporter)))
    node = asyncio.run(successor.rt.observe(b"\0" * 32))
    assert not node.l0.nested and len(node.running) == 1, node.l0


def _rolled_back(reporter: RecordingReporter) -> bool:
    last = reporter.writes[-1] if reporter.writes else None
    return last is not None and last.step == Phase.ROLLING_BACK and last.step_state == StepState.DONE


def _failed_half_way(tmp_path: Path, agent: NodeAgent) -> dict[str, Any]:
    """The node taken to BootingTarget Done (the steps run directly), then what the operator writes when
    the rollback it ordered met a silent agent past its deadline: Failed, directive RollBack, the
    agent's last report unchanged."""
    body = _body(tmp_path)
    spec = HostRefreshSpec.model_validate(body["spec"])

    async def boot() -> None:
        agent.rt.use_refresh("hr-b/")
        sha = (await agent.rt.image(spec.target)).sha256
        for step in FORWARD_STEPS[: FORWARD_STEPS.index(Phase.BOOTING_TARGET) + 1]:
            await STEPS[step](agent.rt, spec, await agent.rt.observe(sha))

    asyncio.run(boot())
    report = AgentStatus(step=Phase.BOOTING_TARGET, step_state=StepState.DONE, message="target host booted")
    body["metadata"] = {"name": "hr-b"}
    body["status"] = {"phase": "Failed", "directive": "RollBack", "agent": report.to_json()}
    return body


def test_a_rollback_the_operator_declared_failed_is_finished_by_the_agent(tmp_path: Path) -> None:
    """Failed by a rollback deadline while the agent was away: the node is half-way (two hosts, nesting
    on, a partition taken). The agent that comes back still brings it back, whatever the verdict."""
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter)
    body = _failed_half_way(tmp_path, agent)
    before = asyncio.run(agent.rt.observe(None))
    assert before.l0.nested and len(before.running) == 2, before
    successor = NodeAgent(agent.rt, reporter, "test/n1/gen1", 0.05, 0.0)  # type: ignore[arg-type]  # restarted
    successor.update(body, "hr-b")
    asyncio.run(_drive_until(successor, lambda: _rolled_back(reporter)))
    node = asyncio.run(successor.rt.observe(None))
    assert not node.l0.nested and len(node.running) == 1 and not node.resources_taken, node


def test_a_refresh_left_half_way_is_finished_before_another_starts(tmp_path: Path) -> None:
    """A second refresh of the node (hr-a sorts first) waits until the agent has finished hr-b."""
    reporter = RecordingReporter()
    agent = _agent(tmp_path, reporter)
    body = _failed_half_way(tmp_path, agent)
    writes_before = len(reporter.writes)
    successor = NodeAgent(agent.rt, reporter, "test/n1/gen1", 0.05, 0.0)  # type: ignore[arg-type]
    successor.update(_body(tmp_path), "hr-a")
    successor.update(body, "hr-b")
    asyncio.run(_drive_until(successor, lambda: "hr-a" in reporter.order and _finished(reporter)))
    after = reporter.order[writes_before:]
    assert after[0] == "hr-b" and after.index("hr-a") > max(i for i, n in enumerate(after) if n == "hr-b"), after
    rolled = [w for n, w in zip(reporter.order, reporter.writes, strict=True) if n == "hr-b"][-1]
    assert (rolled.step, rolled.step_state) == (Phase.ROLLING_BACK, StepState.DONE)


def test_a_rollback_ordered_while_the_watch_lagged_stops_the_agent_before_the_retire(tmp_path: Path) -> None:
    """The operator ordered a rollback and declared Failed (its agent silent), but the agent's watch still
    says Proceed (the agent was stopped, the API server restarted): before the retire, the point of no
    return, the agent reads the refresh afresh, and goes back instead of retiring the old host."""
    reporter = RecordingReporter()
    reporter.server["hr"] = {
        "metadata": {"name": "hr"},
        "spec": _body(tmp_path)["spec"],
        "status": {"phase": "Failed", "directive": "RollBack"},
    }
    agent = _agent(tmp_path, reporter)
    agent.update(_body(tmp_path), "hr")  # what the lagging watch delivered
    asyncio.run(_drive_until(agent, lambda: _rolled_back(reporter)))
    assert not any(w.step == Phase.RETIRING for w in reporter.writes), [(w.step, w.step_state) for w in reporter.writes]
    node = asyncio.run(agent.rt.observe(None))
    assert not node.l0.nested and [x.id for x in node.running] == [1] and not node.resources_taken, node


def _without_l0(tmp_path: Path, reporter: RecordingReporter) -> NodeAgent:
    agent = _agent(tmp_path, reporter)
    agent.rt.l0 = open_l0("sim", tmp_path / "no-l0-here")  # a node with no L0 under its host
    return agent


async def _run_for(agent: NodeAgent, seconds: float) -> None:
    task = asyncio.create_task(agent.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_host_refresh_on_a_node_without_an_l0_fails_its_preflight_once(tmp_path: Path) -> None:
    # The operator does not grant one once the agent said its node has no L0; this is the grant made
    # before it could know. The first look at the L0 must not be taken again for ever.
    reporter = RecordingReporter()
    agent = _without_l0(tmp_path, reporter)
    agent.update(_body(tmp_path), "hr")
    asyncio.run(_run_for(agent, 1.0))
    assert [(w.step, w.step_state, w.failure_reason) for w in reporter.writes] == [
        (Phase.PREFLIGHT, StepState.FAILED, "NoL0")
    ]
    assert "spec.scope: VMM" in reporter.writes[0].message


def test_the_rollback_of_a_refresh_on_a_node_without_an_l0_has_nothing_to_undo(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    agent = _without_l0(tmp_path, reporter)
    agent.update(_body(tmp_path, directive="RollBack"), "hr")
    asyncio.run(_run_for(agent, 1.0))
    assert [(w.step, w.step_state) for w in reporter.writes] == [(Phase.ROLLING_BACK, StepState.DONE)]
