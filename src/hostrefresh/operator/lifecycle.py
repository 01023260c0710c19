"""The HostRefresh lifecycle as one pure function: snapshot in, decision out.

The operator decides *whether* and *when* (admission, deadlines, rollback or roll-forward); the agent
executes. The operator reads the agent's progress from ``status.agent`` and writes only its own
status fields, the node marks, and Events. Every decision is level-based: running ``decide`` again
on the same snapshot yields the same result, so restarts and duplicate events are harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hostrefresh.api import (
    AgentStatus,
    Directive,
    FailurePolicy,
    HostRefreshStatus,
    Phase,
    PhaseTimeouts,
    RefreshScope,
    StepState,
    can_roll_back,
    is_terminal,
)
from hostrefresh.api.hostrefresh import VMIInventory
from hostrefresh.api.meta import Condition, ConditionStatus
from hostrefresh.api.names import CLAIM_ANNOTATION
from hostrefresh.api.phases import FAILED_ENDS, FORWARD_STEPS, RETIRE_REFUSED, ROLLBACK_IMPOSSIBLE, VMS_LOST
from hostrefresh.operator import conditions as cond
from hostrefresh.operator.admission import admission
from hostrefresh.operator.conditions import FALSE, TRUE, UNKNOWN, Reason
from hostrefresh.operator.nodemarks import NodeRecord
from hostrefresh.operator.views import RefreshInputs

_TIMEOUT_FIELD = {
    Phase.PREFLIGHT: "preflight_seconds",
    Phase.PARTITIONING: "partitioning_seconds",
    Phase.NESTED_ENABLING: "nested_enabling_seconds",
    Phase.BOOTING_TARGET: "booting_target_seconds",
    Phase.MIGRATING: "migrating_seconds",
    Phase.RETIRING: "retiring_seconds",
    Phase.DEVIRTUALIZING: "devirtualizing_seconds",
    Phase.VERIFYING: "verifying_seconds",
    Phase.ROLLING_BACK: "rolling_back_seconds",
}


@dataclass(frozen=True)
class EventSpec:
    """A Kubernetes Event to emit about the HostRefresh."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    """What the operator should write after looking at one HostRefresh."""

    status: HostRefreshStatus
    mark_node: bool = False
    unmark_node: bool = False
    events: list[EventSpec] = field(default_factory=list)
    #: Events about the refresh's Node (started, ended), which `kubectl describe node` shows.
    node_events: list[EventSpec] = field(default_factory=list)
    release: bool = False  # deletion may complete (finalizer can go)
    #: The record of what the node runs now (a refresh that succeeded), to write onto the Node.
    record_node: NodeRecord | None = None


def phase_timeout(timeouts: PhaseTimeouts, phase: Phase) -> int | None:
    """Deadline in seconds of ``phase``, None for phases without one."""
    name = _TIMEOUT_FIELD.get(phase)
    return None if name is None else int(getattr(timeouts, name))


def agent_phase(agent: AgentStatus | None) -> tuple[Phase | None, bool]:
    """The phase the agent's report implies, and whether its current step failed."""
    if agent is None or agent.step is None:
        return None, False
    step = Phase(agent.step)
    state = agent.step_state
    if step == Phase.ROLLING_BACK and state == StepState.DONE:
        return Phase.ROLLED_BACK, False
    if step == Phase.VERIFYING and state == StepState.DONE:
        return Phase.SUCCEEDED, False
    # A rollback asked for too late is no failure of the step: the refresh finishes forward.
    return step, state == StepState.FAILED and agent.failure_reason != ROLLBACK_IMPOSSIBLE


def mechanism(scope: str) -> str:
    """Which path a refresh of ``scope`` takes, for Events and conditions."""
    if scope == RefreshScope.VMM:
        return "VMM-only refresh: each VM handed to the new QEMU on the same host, never nested"
    return "host refresh: a new host booted beside the old one under nested virtualization"


def _rank(phase: Phase) -> int:
    return FORWARD_STEPS.index(phase) if phase in FORWARD_STEPS else -1


def decide(inputs: RefreshInputs) -> Decision:
    """Decide the next operator-side state of one HostRefresh."""
    current = inputs.hr.status
    status = current.model_copy(deep=True)
    status.observed_generation = inputs.generation
    if current.agent is not None:
        status.nested_seconds = current.agent.nested_seconds
    decision = Decision(status=status)
    phase = Phase(current.phase) if current.phase else Phase.PENDING

    if is_terminal(phase):
        _finish(decision, inputs, phase)
    elif current.directive in (None, Directive.WAIT):
        _admit(decision, inputs)
    else:
        _follow(decision, inputs, phase)
    _refresh_conditions(decision, inputs)
    return decision


def _set_phase(decision: Decision, inputs: RefreshInputs, phase: Phase, message: str) -> None:
    status = decision.status
    if status.phase == phase:
        return
    previous = status.phase
    status.phase = phase
    status.phase_timestamps.setdefault(str(phase), inputs.now)
    warning = phase == Phase.ROLLING_BACK or phase in FAILED_ENDS
    decision.events.append(
        EventSpec(
            "Warning" if warning else "Normal",
            f"Phase{phase}",
            f"{previous or 'Pending'} -> {phase}: {message}" if message else f"{previous or 'Pending'} -> {phase}",
        )
    )
    spec = inputs.hr.spec
    if previous in (None, Phase.PENDING) and phase == Phase.PREFLIGHT:
        what = f"to {spec.target.version} (scope {spec.scope})"
        decision.node_events.append(
            EventSpec("Normal", "HostRefreshStarted", f"HostRefresh {inputs.name} started: {what}")
        )
    if is_terminal(phase):
        status.completed_at = status.completed_at or inputs.now
        ended = f"HostRefresh {inputs.name} ended {phase}" + (f": {message}" if message else "")
        decision.node_events.append(EventSpec("Warning" if warning else "Normal", f"HostRefresh{phase}", ended))


def _claims_node(inputs: RefreshInputs) -> bool:
    """Whether the node's claim names this refresh (a claim its status may not record, see unmark)."""
    return inputs.node is not None and inputs.node.annotations.get(CLAIM_ANNOTATION) == inputs.name


def _admit(decision: Decision, inputs: RefreshInputs) -> None:
    status = decision.status
    if inputs.deleting:  # never started: nothing to undo
        decision.release = True
        decision.unmark_node = bool(status.added_taints or status.added_annotations) or _claims_node(inputs)
        return
    if inputs.vmis is not None:
        status.vmis = _vmi_status(inputs)
    blocked = admission(inputs)
    if blocked is not None:
        status.phase = Phase.PENDING
        status.directive = Directive.WAIT
        previous = cond.get(status.conditions, cond.PROGRESSING)
        if (previous is None or previous.reason != blocked.reason) and blocked.reason != Reason.START_PACED:
            decision.events.append(EventSpec("Normal", f"Blocked{blocked.reason}", blocked.message))
        status.conditions = cond.set_condition(
            status.conditions, cond.PROGRESSING, FALSE, blocked.reason, blocked.message, inputs.generation, inputs.now
        )
        return
    status.directive = Directive.PROCEED
    status.started_at = inputs.now
    decision.mark_node = True
    spec = inputs.hr.spec
    _set_phase(
        decision, inputs, Phase.PREFLIGHT, f"start granted to the agent on {spec.node_name} ({mechanism(spec.scope)})"
    )


def _follow(decision: Decision, inputs: RefreshInputs, phase: Phase) -> None:
    """A started refresh: mirror the agent, enforce deadlines, choose rollback or roll-forward."""
    status = decision.status
    spec = inputs.hr.spec
    decision.mark_node = True
    reported, failed = agent_phase(inputs.hr.status.agent)
    agent = inputs.hr.status.agent
    _credit_pause(decision, inputs, phase)

    if status.directive == Directive.ROLL_BACK:
        if agent is not None and agent.failure_reason == ROLLBACK_IMPOSSIBLE:
            # The agent had passed the point of no return when the rollback reached it (the two
            # decided at the same moment): finishing is the only way to an end, so the refresh goes on.
            status.directive = Directive.PROCEED
            msg = f"the rollback came after the point of no return ({agent.message}); the refresh finishes instead"
            status.conditions = cond.set_condition(
                status.conditions, cond.DEGRADED, TRUE, Reason.ROLLBACK_TOO_LATE, msg, inputs.generation, inputs.now
            )
            decision.events.append(EventSpec("Warning", Reason.ROLLBACK_TOO_LATE, msg))
            return
        if reported == Phase.ROLLED_BACK:
            back = (
                "every VM is back on the QEMU it ran before"
                if spec.scope == RefreshScope.VMM
                else "every VM is back on the old host; partition destroyed"
            )
            _set_phase(decision, inputs, Phase.ROLLED_BACK, back)
            _finish(decision, inputs, Phase.ROLLED_BACK)
            return
        _set_phase(decision, inputs, Phase.ROLLING_BACK, "")
        if reported == Phase.ROLLING_BACK and failed and agent is not None and agent.failure_reason == VMS_LOST:
            # Everything else is undone; the lost VMs no retry brings back: never a clean RolledBack.
            _fail(decision, inputs, Reason.VMS_LOST, f"rolled back, but VMs are lost: {agent.message}")
            return
        degraded = cond.get(status.conditions, cond.DEGRADED)
        already_degraded = degraded is not None and degraded.status == TRUE
        if reported == Phase.ROLLING_BACK and failed and not already_degraded:  # the agent retries; deadline bounds it
            msg = f"a rollback attempt failed, the agent retries: {agent.message if agent else ''}"
            status.conditions = cond.set_condition(
                status.conditions, cond.DEGRADED, TRUE, Reason.ROLLBACK_RETRYING, msg, inputs.generation, inputs.now
            )
        _check_deadline(decision, inputs, Phase.ROLLING_BACK)
        return

    # Directive Proceed: follow the agent forward; never step back to an earlier phase.
    if (
        reported is not None
        and reported != Phase.ROLLING_BACK
        and (_rank(reported) >= _rank(phase) or is_terminal(reported))
    ):
        if reported == Phase.SUCCEEDED:
            _set_phase(
                decision,
                inputs,
                Phase.SUCCEEDED,
                f"node {spec.node_name} runs {spec.target.version} ({mechanism(spec.scope)})",
            )
            _finish(decision, inputs, Phase.SUCCEEDED)
            return
        ended = Phase(status.phase) if status.phase is not None and status.phase != reported else None
        _set_phase(decision, inputs, reported, agent.message if agent else "")
        judged = ended is not None and not spec.paused and not failed
        if judged and ended is not None and _check_ended_phase(decision, inputs, ended, reported):
            return
        phase = reported

    if failed and reported is not None:
        # The agent's reason (StateNotWritable, L0CallFailed, ...) stays in the message: the rollback's
        # report clears it from status.agent, and it is what a user searches the docs for.
        why = f" ({agent.failure_reason})" if agent is not None and agent.failure_reason else ""
        msg = f"step {reported} failed{why}: {agent.message if agent else ''}"
        retire_refused = reported == Phase.RETIRING and agent is not None and agent.failure_reason == RETIRE_REFUSED
        if not can_roll_back(reported) and not retire_refused:
            reason = Reason.VMS_LOST if agent is not None and agent.failure_reason == VMS_LOST else Reason.STEP_FAILED
            _fail(decision, inputs, reason, msg + " (past the point of no return; the node keeps serving)")
        elif spec.failure_policy == FailurePolicy.HOLD and not (spec.abort or inputs.deleting):
            status.conditions = cond.set_condition(
                status.conditions,
                cond.DEGRADED,
                TRUE,
                Reason.HELD,
                msg + "; set spec.abort to roll back",
                inputs.generation,
                inputs.now,
            )
        else:
            _roll_back(decision, inputs, Reason.STEP_FAILED, msg)
        return

    if (spec.abort or inputs.deleting) and can_roll_back(phase):
        reason = Reason.DELETED if inputs.deleting else Reason.ABORTED
        _roll_back(decision, inputs, reason, "aborted by the user before the point of no return")
        return
    if not spec.paused:
        _check_deadline(decision, inputs, phase)
    if status.directive == Directive.PROCEED and not is_terminal(status.phase):
        _check_agent(decision, inputs, Phase(status.phase or phase))


def _credit_pause(decision: Decision, inputs: RefreshInputs, phase: Phase) -> None:
    """A pause of the refresh under way has just ended: the phase it held does not count the pause
    against its deadline. How long it held is the Paused condition's age (it turns False in this pass)."""
    held = cond.get(inputs.hr.status.conditions, cond.PAUSED)
    if inputs.hr.spec.paused or held is None or held.status != TRUE or held.reason != Reason.PAUSED_BY_USER:
        return
    seconds = max(0.0, (inputs.now - held.last_transition_time).total_seconds())
    paused = decision.status.paused_seconds
    paused[str(phase)] = round(paused.get(str(phase), 0.0) + seconds, 3)


def _paused_for(status: HostRefreshStatus, phase: Phase) -> timedelta:
    return timedelta(seconds=status.paused_seconds.get(str(phase), 0.0))


def phase_deadline(status: HostRefreshStatus, timeouts: PhaseTimeouts) -> datetime | None:
    """When the current phase overruns its deadline (None: no phase under way, or no deadline). The
    operator looks again right then, not at its next periodic pass (a phase can start and overrun
    between two of those)."""
    if status.phase is None or is_terminal(status.phase):
        return None
    limit = phase_timeout(timeouts, Phase(status.phase))
    since = status.phase_timestamps.get(str(status.phase))
    if limit is None or since is None:
        return None
    return since + _paused_for(status, Phase(status.phase)) + timedelta(seconds=limit)


def _check_ended_phase(decision: Decision, inputs: RefreshInputs, ended: Phase, now_in: Phase) -> bool:
    """``ended`` is over and the agent is in the very next step, ``now_in``: judge whether ``ended``
    overran its deadline, by when the agent started ``now_in`` (never later than the operator's clock).
    Not when steps were passed between (an operator away for a while): when ``ended`` itself ended is
    then unknown, and the agent's later reports are no measure of it. True: it overran."""
    limit = phase_timeout(inputs.hr.spec.timeouts, ended)
    since = decision.status.phase_timestamps.get(str(ended))
    agent = inputs.hr.status.agent
    if limit is None or since is None or agent is None or agent.step_started_at is None:
        return False
    steps = list(FORWARD_STEPS)
    if ended not in steps or now_in not in steps or steps.index(now_in) != steps.index(ended) + 1:
        return False
    took = (min(agent.step_started_at, inputs.now) - since - _paused_for(decision.status, ended)).total_seconds()
    if took <= limit:
        return False
    _overran(decision, inputs, now_in, f"phase {ended} took {took:.0f}s, over its deadline of {limit}s")
    return True


def _check_deadline(decision: Decision, inputs: RefreshInputs, phase: Phase) -> None:
    limit = phase_timeout(inputs.hr.spec.timeouts, phase)
    since = decision.status.phase_timestamps.get(str(phase))
    if limit is None or since is None:
        return
    elapsed = (inputs.now - since - _paused_for(decision.status, phase)).total_seconds()
    if elapsed <= limit:
        return
    _overran(decision, inputs, phase, f"phase {phase} exceeded its deadline of {limit}s ({elapsed:.0f}s)")


def _overran(decision: Decision, inputs: RefreshInputs, phase: Phase, msg: str) -> None:
    """A deadline passed while the refresh is in ``phase``: roll back while that is possible."""
    if phase == Phase.ROLLING_BACK and _silent_for(decision, inputs) > inputs.hr.spec.timeouts.agent_silence_seconds:
        _fail(
            decision, inputs, Reason.DEADLINE_EXCEEDED, msg + " and the agent is silent: the node may be half-way back"
        )
    elif phase == Phase.ROLLING_BACK or not can_roll_back(phase):
        # Only the agent can bring the node to an end now (back, or forward past the point of no
        # return); declaring Failed would stop it half-way. Say so and let it go on: Failed comes
        # from the agent's own report, or from its silence (see _check_agent).
        degraded = cond.get(decision.status.conditions, cond.DEGRADED)
        if degraded is None or degraded.reason != Reason.DEADLINE_EXCEEDED:
            way = "back" if phase == Phase.ROLLING_BACK else "forward"
            msg += f"; the agent keeps driving the node {way} while it reports progress"
            decision.status.conditions = cond.set_condition(
                decision.status.conditions,
                cond.DEGRADED,
                TRUE,
                Reason.DEADLINE_EXCEEDED,
                msg,
                inputs.generation,
                inputs.now,
            )
            decision.events.append(EventSpec("Warning", Reason.DEADLINE_EXCEEDED, msg))
    else:
        _roll_back(decision, inputs, Reason.DEADLINE_EXCEEDED, msg)


def _silent_for(decision: Decision, inputs: RefreshInputs) -> float:
    """Seconds since the last sign of life of the node's agent, on the operator's clock.

    Signs of life: its Lease renewals (as the operator saw them), and its own reports on this
    refresh. A report stamped ahead of the operator's clock (an agent whose clock runs ahead, or a
    forged report) is no sign of life: it would hide the agent's silence for as long as it is ahead.
    While the operator's own link to the API server is down, and until it is back, nothing can be
    heard: silence counts from the end of its last outage at the earliest, so the renewals the agent
    makes once the API server is back are seen before any verdict.
    """
    started = decision.status.started_at or inputs.now
    last = [inputs.agent.heard_at, started, inputs.link_trusted_since]
    reported = inputs.hr.status.agent.updated_at if inputs.hr.status.agent else None
    if reported is not None and reported <= inputs.now:
        last.append(reported)
    return (inputs.now - max(t for t in last if t is not None)).total_seconds()


def _check_agent(decision: Decision, inputs: RefreshInputs, phase: Phase) -> None:
    limit = inputs.hr.spec.timeouts.agent_silence_seconds
    silent = _silent_for(decision, inputs)
    if silent <= limit:
        return
    msg = f"the agent on {inputs.hr.spec.node_name} has been silent for {silent:.0f}s (limit {limit}s)"
    if can_roll_back(phase):
        _roll_back(decision, inputs, Reason.AGENT_SILENT, msg + "; rolling back when it returns")
    else:
        _fail(decision, inputs, Reason.AGENT_SILENT, msg + " after the point of no return")


def _roll_back(decision: Decision, inputs: RefreshInputs, reason: str, message: str) -> None:
    status = decision.status
    status.directive = Directive.ROLL_BACK
    status.conditions = cond.set_condition(
        status.conditions, cond.DEGRADED, TRUE, reason, message, inputs.generation, inputs.now
    )
    decision.events.append(EventSpec("Warning", reason, message))
    _set_phase(decision, inputs, Phase.ROLLING_BACK, message)


def _fail(decision: Decision, inputs: RefreshInputs, reason: str, message: str) -> None:
    status = decision.status
    status.conditions = cond.set_condition(
        status.conditions, cond.DEGRADED, TRUE, reason, message, inputs.generation, inputs.now
    )
    decision.events.append(EventSpec("Warning", reason, message))
    _set_phase(decision, inputs, Phase.FAILED, message)
    _finish(decision, inputs, Phase.FAILED)


def _finish(decision: Decision, inputs: RefreshInputs, phase: Phase) -> None:
    """Terminal: take the node marks off (the node serves either way) and let deletion proceed; a
    success records on the node what it runs now (a record that stays when the HostRefresh goes)."""
    decision.mark_node = False
    decision.unmark_node = bool(decision.status.added_taints or decision.status.added_annotations) or _claims_node(
        inputs
    )
    decision.release = inputs.deleting
    completed_at = decision.status.completed_at = decision.status.completed_at or inputs.now
    if phase == Phase.SUCCEEDED:
        decision.status.conditions = cond.set_condition(
            decision.status.conditions, cond.DEGRADED, FALSE, Reason.AS_EXPECTED, "", inputs.generation, inputs.now
        )
        spec = inputs.hr.spec
        decision.record_node = NodeRecord(spec.scope, spec.target.version, inputs.name, completed_at)


def _vmi_status(inputs: RefreshInputs) -> VMIInventory:
    assert inputs.vmis is not None
    return VMIInventory(total=inputs.vmis.total, unmovable=list(inputs.vmis.unmovable))


def _refresh_conditions(decision: Decision, inputs: RefreshInputs) -> None:
    """Set every condition from the first visit; Ready first."""
    status = decision.status
    phase = Phase(status.phase) if status.phase else Phase.PENDING
    gen, now = inputs.generation, inputs.now
    conds: list[Condition] = status.conditions

    # Ready's message sums up the refresh (what `kubectl get hrf -o wide` shows): why it waits, why it
    # failed or rolled back.
    degraded = cond.get(conds, cond.DEGRADED)
    why = degraded.message if degraded is not None and degraded.status == TRUE and degraded.message else ""
    if phase == Phase.SUCCEEDED:
        what = "QEMU " if inputs.hr.spec.scope == RefreshScope.VMM else ""
        ready = (TRUE, Reason.SUCCEEDED, f"node runs {what}{inputs.hr.spec.target.version}")
    elif phase == Phase.ROLLED_BACK:
        back = "rolled back; the node runs its previous host software"
        ready = (FALSE, Reason.ROLLED_BACK, f"{back} ({why})" if why else back)
    elif phase == Phase.FAILED:
        ready = (FALSE, Reason.FAILED, f"the refresh failed: {why}" if why else "the refresh failed")
    elif phase == Phase.PENDING:
        waiting = cond.get(conds, cond.PROGRESSING)
        blocked = waiting is not None and waiting.reason != Reason.NOT_STARTED and waiting.message
        msg = f"waiting to start ({waiting.reason}): {waiting.message}" if waiting and blocked else "waiting to start"
        ready = (FALSE, Reason.NOT_STARTED, msg)
    else:
        ready = (FALSE, Reason.IN_PROGRESS, f"phase {phase}")
    conds = cond.set_condition(conds, cond.READY, *ready, gen, now)

    if is_terminal(phase):
        conds = cond.set_condition(conds, cond.PROGRESSING, FALSE, str(phase), "the refresh has ended", gen, now)
    elif phase != Phase.PENDING:
        reason = Reason.ROLLING_BACK if phase == Phase.ROLLING_BACK else Reason.IN_PROGRESS
        kind = "VMM-only" if inputs.hr.spec.scope == RefreshScope.VMM else "host"
        conds = cond.set_condition(conds, cond.PROGRESSING, TRUE, reason, f"phase {phase} ({kind} refresh)", gen, now)
    elif cond.get(conds, cond.PROGRESSING) is None:
        conds = cond.set_condition(conds, cond.PROGRESSING, FALSE, Reason.NOT_STARTED, "waiting to start", gen, now)

    conds = cond.set_condition(conds, cond.PAUSED, *_paused(inputs, phase), gen, now)

    if cond.get(conds, cond.DEGRADED) is None:
        conds = cond.set_condition(conds, cond.DEGRADED, FALSE, Reason.AS_EXPECTED, "", gen, now)

    agent = inputs.hr.status.agent
    if agent is not None and agent.nested_since is not None:
        conds = cond.set_condition(
            conds,
            cond.NESTED_ACTIVE,
            TRUE,
            Reason.NESTED_ENABLED,
            f"nested virtualization on since {agent.nested_since.isoformat()}",
            gen,
            now,
        )
    else:
        seconds = agent.nested_seconds if agent else 0.0
        conds = cond.set_condition(
            conds, cond.NESTED_ACTIVE, FALSE, Reason.NESTED_DISABLED, f"{seconds:.3f}s nested in total", gen, now
        )

    reported, failed = agent_phase(agent)
    if reported == Phase.PREFLIGHT and failed:
        msg = agent.message if agent else ""
        conds = cond.set_condition(conds, cond.PREFLIGHT_PASSED, FALSE, Reason.PREFLIGHT_FAILED, msg, gen, now)
    elif reported is not None and (
        _rank(reported) > 0
        or reported == Phase.SUCCEEDED
        or (reported == Phase.PREFLIGHT and agent is not None and agent.step_state == StepState.DONE)
    ):
        conds = cond.set_condition(conds, cond.PREFLIGHT_PASSED, TRUE, Reason.PREFLIGHT_OK, "", gen, now)
    elif cond.get(conds, cond.PREFLIGHT_PASSED) is None:
        conds = cond.set_condition(
            conds, cond.PREFLIGHT_PASSED, UNKNOWN, Reason.PREFLIGHT_PENDING, "preflight has not run yet", gen, now
        )
    conds = _kstatus(conds, phase, gen, now)
    status.conditions = cond.ordered(conds, cond.HOST_REFRESH_TYPES)


def _paused(inputs: RefreshInputs, phase: Phase) -> tuple[ConditionStatus, str, str]:
    """The Paused condition: held by spec.paused (before its start, or between two steps), or, not started
    yet, by its paused RefreshPlan (a plan's pause holds only starts). An ended refresh is not paused."""
    if is_terminal(phase):
        return FALSE, Reason.AS_EXPECTED, "the refresh has ended"
    if inputs.hr.spec.paused:
        if inputs.hr.status.directive in (None, Directive.WAIT):
            return TRUE, Reason.PAUSED_BY_USER, "spec.paused is true: the refresh does not start until it is false"
        msg = "spec.paused is true: the agent finishes its current step and waits; deadlines do not count meanwhile"
        return TRUE, Reason.PAUSED_BY_USER, msg
    if inputs.plan_paused and phase == Phase.PENDING:
        msg = "the owning RefreshPlan is paused (its Paused condition says why): the refresh starts when it resumes"
        return TRUE, Reason.PAUSED_BY_PLAN, msg
    return FALSE, Reason.AS_EXPECTED, ""


def _kstatus(conds: list[Condition], phase: Phase, gen: int, now: datetime) -> list[Condition]:
    """Reconciling and Stalled (kstatus): in progress or waiting to start is Reconciling; a failed or
    rolled-back refresh, or one held after a failure for a human, is Stalled; a success is neither."""
    degraded = cond.get(conds, cond.DEGRADED)
    held = degraded is not None and degraded.status == TRUE and degraded.reason == Reason.HELD
    if phase in (Phase.FAILED, Phase.ROLLED_BACK) or held:
        message = degraded.message if degraded is not None and degraded.status == TRUE else f"phase {phase}"
        reason = Reason.HELD if held else (Reason.FAILED if phase == Phase.FAILED else Reason.ROLLED_BACK)
        conds = cond.set_condition(conds, cond.STALLED, TRUE, reason, message, gen, now)
    else:
        conds = cond.set_condition(conds, cond.STALLED, FALSE, Reason.AS_EXPECTED, "", gen, now)
    if is_terminal(phase) or held:
        conds = cond.set_condition(conds, cond.RECONCILING, FALSE, str(phase), "the refresh has ended", gen, now)
    else:
        progressing = cond.get(conds, cond.PROGRESSING)
        reason = progressing.reason if progressing is not None else Reason.NOT_STARTED
        message = progressing.message if progressing is not None else ""
        conds = cond.set_condition(conds, cond.RECONCILING, TRUE, reason, message, gen, now)
    return conds
