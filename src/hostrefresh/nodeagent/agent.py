"""The agent core: drives one node's refresh from observed state; many can share one process.

``NodeAgent`` owns one node. It is told about its node's HostRefresh objects (``update``), and runs
whatever the operator's directive and the observed state call for: the next forward step, the
rollback, or nothing. It checks for pause and rollback between steps and writes only
``status.agent``. A new instance (after a crash, a restart or the L1 switchover at Retiring) simply
observes and carries on: there is no other state to recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import ValidationError

from hostrefresh.api import (
    FORWARD_STEPS,
    VMM_STEPS,
    AgentStatus,
    Directive,
    HostRefresh,
    Phase,
    RefreshScope,
    StepState,
    is_terminal,
)
from hostrefresh.api.phases import NO_L0, ROLLBACK_IMPOSSIBLE, VMS_LOST, left_unfinished
from hostrefresh.l0 import L0Error, NoL0Error
from hostrefresh.nodeagent import metrics, timing, vmmsteps
from hostrefresh.nodeagent.migrate import Outcome, VmLocation
from hostrefresh.nodeagent.progress import (
    VmmObservation,
    can_still_roll_back,
    forward_position,
    rollback_done,
    vmm_can_still_roll_back,
    vmm_forward_position,
    vmm_rollback_done,
)
from hostrefresh.nodeagent.report import Reporter, merge_vms
from hostrefresh.nodeagent.runtime import NodeRuntime, PreflightError
from hostrefresh.nodeagent.steps import STEPS, StepFailedError, StepOutcome, roll_back

log = logging.getLogger("hostrefresh.agent")
#: Steps after the old host is gone: only going forward finishes the node, so a failure there is
#: retried with backoff for as long as the refresh exists, reported as progress, never as the step
#: failing (the operator would declare the refresh Failed on a transient L0 or sysfs error).
ROLL_FORWARD = {Phase.DEVIRTUALIZING, Phase.VERIFYING}
#: Backoff of retries (roll-forward steps, and errors outside any step: an L0 query, a status write).
RETRY_BACKOFF_MAX_S = 30.0
#: A step still running after this many seconds is reported Running; a quicker one is reported only
#: with what follows it (its Done with the next step's start), which saves two writes per quick step.
REPORT_RUNNING_AFTER = 0.25


@dataclass(frozen=True)
class Rollback:
    """What a RollBack directive finds, for either scope: whether undoing is possible, or done, and how."""

    possible: bool
    done: bool
    impossible_at: Phase  # the step to report RollbackImpossible at, when the report names none
    impossible: str
    done_message: str
    undo: Callable[[], Awaitable[StepOutcome]]


class SwitchoverError(Exception):
    """The old L1 retired: this agent instance ends; the new L1's instance resumes the refresh."""


class NodeAgent:
    """One node's agent core."""

    def __init__(
        self,
        runtime: NodeRuntime,
        reporter: Reporter,
        agent_id: str,
        retry_seconds: float = 1.0,
        report_running_after: float = REPORT_RUNNING_AFTER,
    ) -> None:
        self.rt = runtime
        self.node = runtime.node
        self.reporter = reporter
        self.agent_id = agent_id
        self.retry_seconds = retry_seconds
        self.report_running_after = report_running_after
        self._objects: dict[str, Mapping[str, Any]] = {}
        self._changed = asyncio.Event()
        # A finished step's report held back to travel with the next step's start (one write, not
        # two); sent on its own whenever the agent is about to wait instead (see ``_flush``).
        self._unsent: dict[str, AgentStatus] = {}
        self._attempts: dict[str, int] = {}  # consecutive retries per refresh (backoff)
        self._written: dict[str, str | None] = {}  # refreshes this instance has reported on -> their uid
        self._invalid: dict[str, str] = {}  # objects that do not validate, with the error last logged

    # -- input from the watch ------------------------------------------------------------------

    def update(self, body: Mapping[str, Any] | None, name: str) -> None:
        """The latest version of one of this node's HostRefresh objects (None: deleted).

        This agent instance is the only writer of ``status.agent`` while it drives the node: once it
        has written a report, a watch event never replaces it (an event can be older than our last
        write, or carry a report someone else forged, stamped in the future to hide ours). Before
        its first write (a fresh instance, seeded by its predecessor) the newer report wins.
        """
        if body is None:
            self._objects.pop(name, None)
            self._written.pop(name, None)
            self._changed.set()
            return
        uid = (body.get("metadata") or {}).get("uid")
        wrote = name in self._written
        if wrote and self._written[name] not in (None, uid):
            del self._written[name]  # another object of the same name: start from what it says
            wrote = False
        mine = ((self._objects.get(name) or {}).get("status") or {}).get("agent")  # ours once we wrote
        theirs = (body.get("status") or {}).get("agent")
        if mine and (wrote or theirs is None or _newer(mine, theirs)):
            status = {**(body.get("status") or {}), "agent": mine}
            body = {**body, "status": status}
        self._objects[name] = body
        self._changed.set()

    def known(self) -> dict[str, Mapping[str, Any]]:
        """The HostRefresh objects of this node as this agent last saw them (to seed a successor)."""
        return dict(self._objects)

    def _active(self) -> tuple[str, HostRefresh] | None:
        """The refresh the operator granted on this node (at most one by the operator's rules), or one the
        operator declared Failed with the node half-way: that one first, before anything else starts."""
        unfinished_first = sorted(
            self._objects.items(), key=lambda item: (not left_unfinished(item[1].get("status") or {}), item[0])
        )
        for name, body in unfinished_first:
            status = body.get("status") or {}
            if status.get("directive") not in (Directive.PROCEED, Directive.ROLL_BACK):
                continue
            if is_terminal(status.get("phase")) and not left_unfinished(status):
                continue
            try:
                hr = HostRefresh.model_validate({"spec": body["spec"], "status": status})
            except ValidationError as exc:
                # Stored before the API grew stricter (e.g. without spec.target.checksum): this node's
                # agent must not crash on it (with it every node this process serves), nor act on it.
                if self._invalid.get(name) != str(exc):
                    self._invalid[name] = str(exc)
                    log.error("node %s: HostRefresh %s is not valid, left alone until fixed: %s", self.node, name, exc)
                continue
            return name, hr
        return None

    async def _wait_change(self, timeout: float | None = None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; raises SwitchoverError after the old host retired."""
        while True:
            active = self._active()
            if active is None:
                await self._flush()
                await self._wait_change()
                continue
            name, hr = active
            try:
                progressed = await self._drive(name, hr)
            except SwitchoverError:
                raise
            except Exception as exc:  # outside any step (an L0 query, a status write): retry, never crash
                log.exception("node %s: refresh %s: error outside a step; retrying", self.node, name)
                await self._retry_later(name, hr.status.agent or AgentStatus(), None, exc)
                continue
            if not progressed:
                await self._flush_quietly()
                await self._wait_change(timeout=self.retry_seconds * 5)

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except Exception:  # the API server may be away for a moment; the next pass sends it again
            log.warning("node %s: could not send a held-back report; retrying later", self.node, exc_info=True)

    async def _retry_later(self, name: str, agent: AgentStatus, phase: Phase | None, exc: Exception) -> bool:
        """Say that this node retries (if the API server listens), wait with backoff; True: drive again."""
        attempt = self._attempts.get(name, 0) + 1
        self._attempts[name] = attempt
        delay = min(self.retry_seconds * 2 ** (attempt - 1), RETRY_BACKOFF_MAX_S)
        metrics.RETRIES.labels(self.node).inc()
        step = phase or agent.step or Phase.PREFLIGHT
        state = StepState.RUNNING if phase is not None else (agent.step_state or StepState.RUNNING)
        # A failed step's report (its reason decides rollback or not) is never written over by a retry.
        if state != StepState.FAILED:
            try:
                await self._report(
                    name, agent, step, state, f"retrying in {delay:.0f}s (attempt {attempt}) after: {exc}"[:4096]
                )
            except Exception:
                log.warning("node %s: could not report the retry; retrying anyway", self.node, exc_info=True)
        await asyncio.sleep(delay)
        return True

    async def _flush(self) -> None:
        """Send held-back reports: the agent is about to wait, so no next step carries them."""
        for name, agent in list(self._unsent.items()):
            body = self._objects.get(name)
            if body is not None:
                await self.reporter.report(name, agent)  # on failure it stays held, and is sent later
                self._written[name] = (body.get("metadata") or {}).get("uid")
            self._unsent.pop(name, None)

    async def _drive(self, name: str, hr: HostRefresh) -> bool:
        """Do the next thing for ``hr``; False when there is nothing to do until something changes."""
        agent = hr.status.agent or AgentStatus()
        uid = ((self._objects.get(name) or {}).get("metadata") or {}).get("uid", "")
        self.rt.use_refresh(f"{name}/{uid}")
        if hr.spec.scope == RefreshScope.VMM:
            return await self._drive_vmm(name, hr, agent)
        try:
            image = await self.rt.image(hr.spec.target)
            target_sha = image.sha256
        except PreflightError as exc:
            booted = self.rt.recorded_target()
            if booted is not None:
                # The new host was booted from the image when it verified: the file is no longer
                # needed, and the host is found by the checksum it booted with. The refresh goes on
                # (or rolls back) with that host, never without it.
                log.warning(
                    "node %s: %s: the target image no longer verifies (%s); its host runs already", self.node, name, exc
                )
                target_sha = booted
            elif hr.status.directive == Directive.ROLL_BACK:
                target_sha = None  # nothing booted from it: the rollback needs no image
            else:
                obs = await self.rt.observe(None)
                await self._report_failure(name, hr, forward_position(obs), "ImageInvalid", str(exc))
                return False
        try:
            obs = await self.rt.observe(target_sha)
        except NoL0Error as exc:
            if self.rt.recorded_baseline() is not None:
                raise  # the L0 went away mid-refresh: looked at again until it answers
            return await self._without_l0(name, hr, agent, exc)

        too_late = hr.status.phase == Phase.FAILED and not can_still_roll_back(obs)  # failed, no way back: forward
        if hr.status.directive == Directive.ROLL_BACK and not too_late:
            return await self._roll_back(
                name,
                hr,
                agent,
                Rollback(
                    possible=can_still_roll_back(obs),
                    done=rollback_done(obs),
                    impossible_at=Phase.RETIRING,
                    impossible="the old host was retired: the node can only be driven forward",
                    done_message="node is as it was",
                    undo=lambda: roll_back(self.rt, obs),
                ),
            )

        position = forward_position(obs)
        if position == Phase.PREFLIGHT and agent.step in FORWARD_STEPS and agent.step_state == StepState.DONE:
            position = Phase.PARTITIONING  # preflight leaves no trace to observe; its report is the record
        if position == Phase.VERIFYING and agent.step == Phase.VERIFYING and agent.step_state == StepState.DONE:
            return False
        if _failed_at(agent, position) and not is_terminal(hr.status.phase):
            return False  # the operator decides: roll back, hold, or (after Retiring) fail
        lost = obs.vms_on(VmLocation.LOST)
        metrics.VMS_LOST.labels(self.node).set(len(lost))
        if lost and position != Phase.PREFLIGHT and can_still_roll_back(obs):
            # (Preflight refuses a node with lost VMs itself; past the point of no return the node is
            # driven to the end all the same, and Verifying names the lost VMs last.)
            # A VM that runs nowhere (its last host died with it) stops the refresh: name it, keep
            # whatever is left of it for a person, and let the operator decide.
            await self._report_failure(name, hr, position, VMS_LOST, f"VMs running nowhere: {', '.join(lost)}", agent)
            return False
        if hr.spec.paused:
            if agent.message != "paused between steps":
                await self._report(
                    name, agent, agent.step or position, agent.step_state or StepState.DONE, "paused between steps"
                )
            return False
        step = STEPS[position]
        return await self._run_step(name, hr, position, lambda: step(self.rt, hr.spec, obs))

    async def _without_l0(self, name: str, hr: HostRefresh, agent: AgentStatus, exc: NoL0Error) -> bool:
        """A host refresh on a node with no L0, before it took anything: no step can have run (each
        needs the L0). Say so at Preflight, with the reason a user looks up, instead of taking the
        first look again for ever; a rollback of it has nothing to undo."""
        if hr.status.directive == Directive.ROLL_BACK:
            if not (agent.step == Phase.ROLLING_BACK and agent.step_state == StepState.DONE):
                await self._report(
                    name, agent, Phase.ROLLING_BACK, StepState.DONE, "nothing to undo: no L0 on this node"
                )
            return False
        if not (agent.step == Phase.PREFLIGHT and agent.step_state == StepState.FAILED):
            message = f"no L0 hypervisor on {self.node} ({exc}): refresh only QEMU (spec.scope: VMM), or install the L0"
            await self._report_failure(name, hr, Phase.PREFLIGHT, NO_L0, message)
        return False

    async def _drive_vmm(self, name: str, hr: HostRefresh, agent: AgentStatus) -> bool:
        """``_drive`` for a VMM-only refresh: Preflight, Migrating, Verifying on the node's one host."""
        try:
            binary = await self.rt.vmm_binary(hr.spec.target)
        except PreflightError as exc:
            if hr.status.directive != Directive.ROLL_BACK:
                await self._report_failure(name, hr, Phase.PREFLIGHT, "ImageInvalid", str(exc))
                return False
            binary = ""  # an unknown binary: only the rollback (to each VM's own build) remains
        view = await self.rt.migrator.vmm().view()
        obs = VmmObservation(view.vms, view.binaries, view.pending, binary, view.settled)
        if hr.status.directive == Directive.ROLL_BACK:
            return await self._roll_back(
                name,
                hr,
                agent,
                Rollback(
                    possible=vmm_can_still_roll_back(obs),
                    done=vmm_rollback_done(obs),
                    impossible_at=Phase.VERIFYING,
                    impossible="the new QEMU is every VM's own already: refresh back to the old build instead",
                    done_message="every VM on its old QEMU",
                    undo=lambda: vmmsteps.roll_back(self.rt, obs),
                ),
            )
        position = vmm_forward_position(obs)
        if position == Phase.PREFLIGHT and agent.step in VMM_STEPS and agent.step_state == StepState.DONE:
            position = Phase.MIGRATING  # preflight leaves no trace to observe; its report is the record
        if position == Phase.VERIFYING and agent.step == Phase.VERIFYING and agent.step_state == StepState.DONE:
            return False
        if agent.step == Phase.VERIFYING and agent.step_state == StepState.DONE:
            return False  # committed: a VM that starts now is the node's VM runtime's, on its own QEMU
        if _failed_at(agent, position):
            return False  # the operator decides: roll back, hold, or (in Verifying) fail
        lost = obs.vms_on(VmLocation.LOST)
        metrics.VMS_LOST.labels(self.node).set(len(lost))
        if lost and position == Phase.MIGRATING:
            await self._report_failure(name, hr, position, VMS_LOST, f"VMs running nowhere: {', '.join(lost)}", agent)
            return False
        if hr.spec.paused:
            if agent.message != "paused between steps":
                await self._report(
                    name, agent, agent.step or position, agent.step_state or StepState.DONE, "paused between steps"
                )
            return False
        step = vmmsteps.STEPS[position]
        return await self._run_step(name, hr, position, lambda: step(self.rt, hr.spec, obs))

    async def _roll_back(self, name: str, hr: HostRefresh, agent: AgentStatus, rollback: Rollback) -> bool:
        """The directive is RollBack: say it is too late, say it is done, or undo (retried, not in a tight loop)."""
        if not rollback.possible:
            # Past the point of no return: there is nothing to go back to. Say so; the operator then
            # lets the refresh finish forward.
            if agent.failure_reason != ROLLBACK_IMPOSSIBLE:
                await self._report_failure(
                    name, hr, agent.step or rollback.impossible_at, ROLLBACK_IMPOSSIBLE, rollback.impossible, agent
                )
            return False
        if rollback.done:
            if not (agent.step == Phase.ROLLING_BACK and agent.step_state == StepState.DONE):
                await self._report(
                    name, agent, Phase.ROLLING_BACK, StepState.DONE, rollback.done_message, nested_off=True
                )
            return False
        failed_before = agent.step == Phase.ROLLING_BACK and agent.step_state == StepState.FAILED
        if failed_before and agent.updated_at is not None and not self._retry_due(agent.updated_at):
            return False  # rollback is retried (it must converge), but not in a tight loop
        return await self._run_step(name, hr, Phase.ROLLING_BACK, rollback.undo)

    def _retry_due(self, since: datetime) -> bool:
        return (datetime.now(UTC) - since).total_seconds() >= self.retry_seconds * 5

    async def _run_step(self, name: str, hr: HostRefresh, phase: Phase, action: Any) -> bool:
        agent = hr.status.agent or AgentStatus()
        log.info("node %s: %s: %s started", self.node, name, phase)
        started = time.monotonic()
        started_wall = time.time()
        past_no_return = phase == Phase.VERIFYING and hr.spec.scope == RefreshScope.VMM  # it commits
        if (phase == Phase.RETIRING or past_no_return) and not await self._still_granted(name):
            return False
        try:
            outcome: StepOutcome = await self._first_attempt(name, agent, phase, action, past_no_return)
        except Exception as exc:  # a step's failure, an L0 error or an unexpected one: all reported at this step
            permanent = isinstance(exc, StepFailedError) and exc.reason == VMS_LOST  # no retry brings them back
            if phase in ROLL_FORWARD and not permanent:  # past the point of no return: roll forward, afresh
                log.warning("node %s: %s failed, retrying: %s", self.node, phase, exc)
                return await self._retry_later(name, agent, phase, exc)
            return await self._step_failed(name, hr, phase, agent, exc)
        self._attempts.pop(name, None)
        timing.record("step", started_wall, time.time(), phase=str(phase))
        return await self._step_done(name, str(hr.spec.scope), agent, phase, outcome, started)

    async def _still_granted(self, name: str) -> bool:
        """Before a step that passes the point of no return: whether the API server still says Proceed.

        The watch can lag far behind (an agent stopped for a while, an API server that restarted): a
        RollBack or Failed the operator wrote meanwhile must win over the Proceed this agent remembers,
        or the agent would retire the old host after the operator ordered it back. A different answer
        replaces this agent's view (the next pass drives by it); no answer: not now, try again later.
        """
        try:
            body = await self.reporter.read(name)
        except Exception as exc:
            log.warning(
                "node %s: %s: cannot confirm the directive before the point of no return: %s", self.node, name, exc
            )
            await asyncio.sleep(self.retry_seconds)
            return False
        status = (body or {}).get("status") or {}
        if status.get("directive") == Directive.PROCEED and not is_terminal(status.get("phase")):
            return True
        log.warning(
            "node %s: %s: no longer granted (%s, %s): not passing the point of no return",
            self.node,
            name,
            status.get("directive"),
            status.get("phase"),
        )
        self.update(body, name)
        return False

    async def _first_attempt(
        self, name: str, agent: AgentStatus, phase: Phase, action: Any, report_first: bool = False
    ) -> StepOutcome:
        """Run the step; report it Running once it has run for ``report_running_after`` seconds (<= 0,
        or ``report_first``: before it starts)."""
        if self.report_running_after <= 0 or phase == Phase.RETIRING or report_first:
            # Retiring may end this host (and this process) at any moment: everything this agent
            # knows (the VMs' handover records held back from Migrating) is written before it starts.
            # A step that passes the point of no return is announced before it does, so the operator
            # stops asking for a rollback as early as possible.
            await self._report(name, agent, phase, StepState.RUNNING, f"{phase} started")
            return cast(StepOutcome, await action())
        task: asyncio.Future[StepOutcome] = asyncio.ensure_future(action())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.report_running_after)
            if not done:
                await self._report(name, agent, phase, StepState.RUNNING, f"{phase} started")
            return await task
        except BaseException:
            task.cancel()  # cancelled (agent stopping): the step must not run on unattended
            raise

    async def _step_failed(self, name: str, hr: HostRefresh, phase: Phase, agent: AgentStatus, exc: Exception) -> bool:
        metrics.STEPS.labels(self.node, str(hr.spec.scope), str(phase), "failed").inc()
        if isinstance(exc, StepFailedError):
            if exc.handovers:
                agent.vms = merge_vms(agent.vms, exc.handovers, phase == Phase.ROLLING_BACK)
            await self._report_failure(name, hr, phase, exc.reason, str(exc), agent)
        elif isinstance(exc, L0Error):
            await self._report_failure(name, hr, phase, "L0CallFailed", str(exc), agent)
        else:
            log.exception("node %s: %s: unexpected error in %s", self.node, name, phase, exc_info=exc)
            await self._report_failure(name, hr, phase, "AgentError", f"{type(exc).__name__}: {exc}", agent)
        return False

    async def _step_done(
        self, name: str, scope: str, agent: AgentStatus, phase: Phase, outcome: StepOutcome, started: float
    ) -> bool:
        metrics.STEPS.labels(self.node, scope, str(phase), "done").inc()
        log.info("node %s: %s: %s done: %s", self.node, name, phase, outcome.message)
        metrics.STEP_SECONDS.labels(self.node, scope, str(phase)).observe(time.monotonic() - started)
        for record in outcome.handovers:
            metrics.HANDOVERS.labels(self.node, scope, str(record.path), str(record.outcome)).inc()
            if record.outcome == Outcome.MOVED and record.downtime_ms is not None:
                metrics.DOWNTIME.labels(self.node, scope).observe(record.downtime_ms / 1000)
        if outcome.handovers:
            agent.vms = merge_vms(agent.vms, outcome.handovers, phase == Phase.ROLLING_BACK)
        # A forward step other than the last is followed at once by the next one, whose start report
        # carries this one's results; the old host's last report (Retiring) and the end are sent now.
        hold = phase in FORWARD_STEPS and phase != Phase.VERIFYING and not outcome.switchover
        await self._report(
            name,
            agent,
            phase,
            StepState.DONE,
            outcome.message,
            nested_on=outcome.nested_on is True,
            nested_off=outcome.nested_on is False,
            hold=hold,
        )
        if outcome.switchover:
            raise SwitchoverError(f"{self.node}: old host retired")
        return True

    # -- reporting -----------------------------------------------------------------------------

    async def _report(
        self,
        name: str,
        agent: AgentStatus,
        step: Phase,
        state: StepState,
        message: str,
        *,
        nested_on: bool = False,
        nested_off: bool = False,
        failure_reason: str | None = None,
        hold: bool = False,
    ) -> None:
        """Record progress in ``status.agent``; ``hold``: keep it for the next report (see ``_flush``)."""
        now = datetime.now(UTC)
        held = self._unsent.pop(name, None)
        if held is not None and held.step_state == StepState.DONE and state == StepState.RUNNING:
            message = f"{held.step} done: {held.message}; {message}"
        if agent.step != step or agent.step_state != state:
            agent.step_started_at = now if state == StepState.RUNNING or agent.step != step else agent.step_started_at
        agent.step, agent.step_state, agent.message = step, state, message[:4096]
        agent.failure_reason = failure_reason
        agent.agent_id = self.agent_id
        if nested_on and agent.nested_since is None:
            agent.nested_since = now
        if nested_off and agent.nested_since is not None:
            agent.nested_seconds += (now - agent.nested_since).total_seconds()
            agent.nested_since = None
        if hold:
            agent.updated_at = now
            self._unsent[name] = agent
        else:
            await self.reporter.report(name, agent)
        body = self._objects.get(name)
        if body is not None:  # keep our own view current until the watch delivers it
            status = dict(body.get("status") or {})
            status["agent"] = agent.to_json()
            self._objects[name] = {**body, "status": status}
            if not hold:
                self._written[name] = (body.get("metadata") or {}).get("uid")

    async def _report_failure(
        self,
        name: str,
        hr: HostRefresh,
        step: Phase | None,
        reason: str,
        message: str,
        agent: AgentStatus | None = None,
    ) -> None:
        agent = agent or hr.status.agent or AgentStatus()
        log.warning("node %s: %s failed (%s): %s", self.node, step, reason, message)
        await self._report(name, agent, step or Phase.PREFLIGHT, StepState.FAILED, message, failure_reason=reason)


def _failed_at(agent: AgentStatus, position: Phase) -> bool:
    """Whether the step at ``position`` failed and waits for the operator's decision. A rollback that
    came too late (RollbackImpossible) is no step failure: the refresh goes on forward."""
    return (
        agent.step == position and agent.step_state == StepState.FAILED and agent.failure_reason != ROLLBACK_IMPOSSIBLE
    )


def _newer(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether our own last report is newer than the one in a watch event (RFC 3339 UTC sorts as text)."""
    return str(mine.get("updatedAt") or "") > str(theirs.get("updatedAt") or "")
