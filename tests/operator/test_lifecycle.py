"""The HostRefresh lifecycle decisions, as tables of cases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hostrefresh.api import Directive, Phase
from hostrefresh.api.phases import left_unfinished
from hostrefresh.operator import conditions as cond
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.lifecycle import decide, phase_deadline
from hostrefresh.operator.views import AgentView, NodeView, PeerView, VMIView

from .helpers import T0, host_refresh, inputs, started


def _cond(decision: Any, type_: str) -> tuple[str, str]:
    c = cond.get(decision.status.conditions, type_)
    assert c is not None
    return str(c.status), c.reason


def test_first_visit_sets_every_condition_and_grants() -> None:
    d = decide(inputs(host_refresh()))
    assert [c.type for c in d.status.conditions] == list(cond.HOST_REFRESH_TYPES)
    assert d.status.directive == Directive.PROCEED
    assert d.status.phase == Phase.PREFLIGHT
    assert d.mark_node and not d.unmark_node
    assert d.status.observed_generation == 1
    assert [e.reason for e in d.events] == ["PhasePreflight"]
    assert _cond(d, cond.PREFLIGHT_PASSED) == ("Unknown", Reason.PREFLIGHT_PENDING)


@pytest.mark.parametrize(
    ("kwargs", "spec", "reason"),
    [
        ({"node": None}, {}, Reason.NODE_NOT_FOUND),
        ({"peers": (PeerView("other", T0, started=True, terminal=False),)}, {}, Reason.NODE_BUSY),
        ({"peers": (PeerView("older", T0 - timedelta(hours=1), started=False, terminal=False),)}, {}, Reason.NODE_BUSY),
        (
            {"peers": (PeerView("half", T0 - timedelta(hours=2), started=True, terminal=True, unfinished=True),)},
            {},
            Reason.NODE_BUSY,
        ),
        ({"agent_age": None}, {}, Reason.AGENT_NOT_ALIVE),
        ({"agent_age": 120.0}, {}, Reason.AGENT_NOT_ALIVE),
        ({"node": NodeView("node-a", ready=False)}, {}, Reason.NODE_NOT_READY),
        ({"plan_paused": True}, {}, Reason.PLAN_PAUSED),
        ({}, {"paused": True}, Reason.PAUSED),
        ({"vmis": VMIView(3, ("gpu-vm",))}, {}, Reason.UNMOVABLE_VMS),
    ],
)
def test_admission_blocks_with_a_reason(kwargs: dict[str, Any], spec: dict[str, Any], reason: str) -> None:
    d = decide(inputs(host_refresh(**spec), **kwargs))
    assert d.status.phase == Phase.PENDING
    assert d.status.directive == Directive.WAIT
    assert _cond(d, cond.PROGRESSING) == ("False", reason)
    assert not d.mark_node
    assert d.events and d.events[0].reason == f"Blocked{reason}"


def test_a_cordon_does_not_hold_a_refresh_someone_asked_for() -> None:
    # A HostRefresh names its node: cordoning a node before its maintenance is the usual order, so the
    # cordon is no reason to wait (a plan's spec.cordonedNodes decides before it creates the refresh).
    d = decide(inputs(host_refresh(), node=NodeView("node-a", unschedulable=True)))
    assert d.status.directive == Directive.PROCEED and d.mark_node


def test_a_terminal_peer_does_not_block_and_unmovable_vms_may_proceed() -> None:
    peers = (PeerView("done", T0 - timedelta(hours=2), started=True, terminal=True),)
    d = decide(inputs(host_refresh(unmovableVMPolicy="Proceed"), peers=peers, vmis=VMIView(2, ("gpu",))))
    assert d.status.directive == Directive.PROCEED
    assert d.status.vmis is not None and d.status.vmis.unmovable == ["gpu"]


@pytest.mark.parametrize(
    ("status", "unfinished"),
    [
        ({"phase": "Failed", "directive": "RollBack", "agent": {"step": "BootingTarget", "stepState": "Done"}}, True),
        ({"phase": "Failed", "directive": "RollBack", "agent": {"step": "RollingBack", "stepState": "Failed"}}, True),
        ({"phase": "Failed", "directive": "RollBack", "agent": {"step": "RollingBack", "stepState": "Done"}}, False),
        ({"phase": "Failed", "directive": "Proceed", "agent": {"step": "Retiring", "stepState": "Done"}}, True),
        ({"phase": "Failed", "directive": "Proceed", "agent": {"step": "Verifying", "stepState": "Done"}}, False),
        (
            {
                "phase": "Failed",
                "directive": "RollBack",
                "agent": {"step": "RollingBack", "stepState": "Failed", "failureReason": "VMsLost"},
            },
            False,
        ),
        (
            {"phase": "RolledBack", "directive": "RollBack", "agent": {"step": "RollingBack", "stepState": "Done"}},
            False,
        ),
        ({"phase": "Migrating", "directive": "Proceed", "agent": {"step": "Migrating", "stepState": "Running"}}, False),
    ],
)
def test_which_failed_refreshes_left_their_node_half_way(status: dict[str, Any], unfinished: bool) -> None:
    """Failed by the operator's verdict with the node not at an end: the agent still ends the node."""
    assert left_unfinished(status) is unfinished


def test_a_start_slot_ahead_waits_quietly_and_one_due_starts() -> None:
    ahead = decide(inputs(host_refresh(), start_at=T0 + timedelta(seconds=3)))
    assert ahead.status.directive == Directive.WAIT
    assert _cond(ahead, cond.PROGRESSING) == ("False", Reason.START_PACED)
    progressing = cond.get(ahead.status.conditions, cond.PROGRESSING)
    assert progressing is not None and "12:00:03.000 UTC" in progressing.message
    assert ahead.events == []  # a wait of a moment is no news
    later = inputs(host_refresh(status=ahead.status.to_json()), start_at=T0, now=T0 + timedelta(seconds=3))
    due = decide(later)
    assert due.status.directive == Directive.PROCEED
    assert due.status.phase == Phase.PREFLIGHT


def test_a_start_slot_never_overrides_another_reason_to_wait() -> None:
    d = decide(inputs(host_refresh(), node=NodeView("node-a", ready=False), start_at=T0 + timedelta(seconds=3)))
    assert _cond(d, cond.PROGRESSING) == ("False", Reason.NODE_NOT_READY)


def test_blocked_event_is_not_repeated_for_the_same_reason() -> None:
    first = decide(inputs(host_refresh(), node=None))
    again = decide(inputs(host_refresh(status=first.status.to_json()), node=None))
    assert again.events == []


@pytest.mark.parametrize(
    ("step", "state", "phase"),
    [
        ("Preflight", "Done", Phase.PREFLIGHT),
        ("Partitioning", "Running", Phase.PARTITIONING),
        ("Migrating", "Running", Phase.MIGRATING),
        ("Verifying", "Done", Phase.SUCCEEDED),
    ],
)
def test_follows_the_agent(step: str, state: str, phase: Phase) -> None:
    d = decide(inputs(host_refresh(status=started("Preflight", step, state))))
    assert d.status.phase == phase
    if phase == Phase.SUCCEEDED:
        assert _cond(d, cond.READY) == ("True", Reason.SUCCEEDED)
        assert d.unmark_node and not d.mark_node
        assert d.status.completed_at is not None


def test_never_steps_back_to_an_earlier_phase() -> None:
    d = decide(inputs(host_refresh(status=started("Migrating", "Partitioning", "Done"))))
    assert d.status.phase == Phase.MIGRATING


@pytest.mark.parametrize("step", ["Preflight", "Partitioning", "NestedEnabling", "BootingTarget", "Migrating"])
def test_failure_before_retiring_rolls_back(step: str) -> None:
    d = decide(inputs(host_refresh(status=started(step, step, "Failed", message="boom"))))
    assert d.status.directive == Directive.ROLL_BACK
    assert d.status.phase == Phase.ROLLING_BACK
    assert _cond(d, cond.DEGRADED) == ("True", Reason.STEP_FAILED)
    assert any(e.type == "Warning" and "boom" in e.message for e in d.events)


@pytest.mark.parametrize("step", ["Retiring", "Devirtualizing", "Verifying"])
def test_failure_after_the_point_of_no_return_ends_failed(step: str) -> None:
    d = decide(inputs(host_refresh(status=started(step, step, "Failed"))))
    assert d.status.phase == Phase.FAILED
    assert d.status.directive == Directive.PROCEED
    assert d.unmark_node


def test_hold_policy_waits_for_a_human_then_abort_rolls_back() -> None:
    held = decide(inputs(host_refresh(failurePolicy="Hold", status=started("Migrating", "Migrating", "Failed"))))
    assert held.status.directive == Directive.PROCEED
    assert _cond(held, cond.DEGRADED) == ("True", Reason.HELD)
    aborted = decide(
        inputs(host_refresh(failurePolicy="Hold", abort=True, status=started("Migrating", "Migrating", "Failed")))
    )
    assert aborted.status.directive == Directive.ROLL_BACK


@pytest.mark.parametrize(
    ("phase", "seconds", "expected"),
    [
        ("Partitioning", 299, Directive.PROCEED),
        ("Partitioning", 301, Directive.ROLL_BACK),
        ("Migrating", 1801, Directive.ROLL_BACK),
    ],
)
def test_deadlines(phase: str, seconds: int, expected: Directive) -> None:
    now = T0 + timedelta(seconds=seconds)
    d = decide(inputs(host_refresh(status=started(phase, phase)), now=now, agent_age=1.0))
    assert d.status.directive == expected
    if expected == Directive.ROLL_BACK:
        assert _cond(d, cond.DEGRADED)[1] == Reason.DEADLINE_EXCEEDED


@pytest.mark.parametrize("phase", ["Retiring", "Devirtualizing", "Verifying", "RollingBack"])
def test_a_deadline_with_no_way_back_degrades_but_never_fails_a_live_agent(phase: str) -> None:
    directive = Directive.ROLL_BACK if phase == "RollingBack" else Directive.PROCEED
    hr = host_refresh(status=started(phase, phase, directive=directive))
    d = decide(inputs(hr, now=T0 + timedelta(seconds=2000), agent_age=1.0))
    assert d.status.phase == Phase(phase), d.status.phase
    assert _cond(d, cond.DEGRADED)[:2] == ("True", Reason.DEADLINE_EXCEEDED)
    assert [e.reason for e in d.events] == [Reason.DEADLINE_EXCEEDED]


def test_a_deadline_with_no_way_back_and_a_silent_agent_fails() -> None:
    hr = host_refresh(status=started("Devirtualizing", "Devirtualizing"))
    d = decide(inputs(hr, now=T0 + timedelta(seconds=2000), agent_age=120))
    assert d.status.phase == Phase.FAILED
    assert _cond(d, cond.DEGRADED)[1] == Reason.AGENT_SILENT


def test_paused_refresh_does_not_hit_the_deadline() -> None:
    d = decide(inputs(host_refresh(paused=True, status=started("Migrating", "Migrating")), now=T0 + timedelta(hours=2)))
    assert d.status.directive == Directive.PROCEED


def _paused_then_resumed(paused_at: timedelta, resumed_at: timedelta) -> Any:
    """A refresh in Migrating (since T0) paused at T0 + ``paused_at``, resumed at T0 + ``resumed_at``."""
    first = decide(inputs(host_refresh(started("Migrating", "Migrating"), paused=True), now=T0 + paused_at))
    return decide(inputs(host_refresh(first.status.to_json()), now=T0 + resumed_at, generation=2))


def test_a_resumed_refresh_does_not_count_its_pause_against_the_phase_deadline() -> None:
    # Migrating may take 1800 s; it ran 60 s, was paused for two hours, and goes on.
    resumed = _paused_then_resumed(timedelta(seconds=60), timedelta(hours=2, seconds=60))
    assert resumed.status.directive == Directive.PROCEED, resumed.status.conditions
    assert resumed.status.paused_seconds == {"Migrating": 7200.0}
    assert _cond(resumed, cond.DEGRADED)[1] != Reason.DEADLINE_EXCEEDED
    deadline = phase_deadline(resumed.status, host_refresh().spec.timeouts)
    assert deadline == T0 + timedelta(seconds=7200 + 1800)


def test_a_phase_that_ended_during_a_pause_is_judged_without_it() -> None:
    resumed = _paused_then_resumed(timedelta(seconds=60), timedelta(hours=2, seconds=60))
    status = resumed.status.to_json()
    started_at = (T0 + timedelta(hours=2, seconds=65)).isoformat()  # Migrating ended during the pause
    status["agent"] = {"step": "Retiring", "stepState": "Running", "message": "", "stepStartedAt": started_at}
    on = decide(inputs(host_refresh(status), now=T0 + timedelta(hours=2, seconds=66), generation=2))
    assert on.status.phase == Phase.RETIRING and on.status.directive == Directive.PROCEED, on.status.conditions


def test_a_resumed_phase_still_overruns_once_its_running_time_passes_the_deadline() -> None:
    resumed = _paused_then_resumed(timedelta(seconds=60), timedelta(hours=2, seconds=60))
    late = decide(
        inputs(host_refresh(resumed.status.to_json()), now=T0 + timedelta(hours=2, seconds=1801), generation=2)
    )
    assert late.status.directive == Directive.ROLL_BACK
    assert _cond(late, cond.DEGRADED)[1] == Reason.DEADLINE_EXCEEDED


def test_the_node_hears_when_its_refresh_ends() -> None:
    hr = host_refresh(status=started("Verifying", "Verifying", "Done"))
    d = decide(inputs(hr))
    assert d.status.phase == Phase.SUCCEEDED
    assert [(e.type, e.reason) for e in d.node_events] == [("Normal", "HostRefreshSucceeded")]
    assert d.node_events[0].message.startswith("HostRefresh hr-a ended Succeeded: node node-a runs 2.0")
    assert decide(inputs(host_refresh(d.status.to_json()))).node_events == []  # once


def test_silent_agent_leads_to_rollback() -> None:
    d = decide(
        inputs(host_refresh(status=started("Migrating", "Migrating")), now=T0 + timedelta(seconds=90), agent_age=61)
    )
    assert d.status.directive == Directive.ROLL_BACK
    assert _cond(d, cond.DEGRADED)[1] == Reason.AGENT_SILENT


def test_abort_and_delete_before_retiring_roll_back_and_release_after() -> None:
    d = decide(inputs(host_refresh(abort=True, status=started("BootingTarget", "BootingTarget"))))
    assert d.status.directive == Directive.ROLL_BACK
    deleting = decide(inputs(host_refresh(status=started("Migrating", "Migrating")), deleting=True))
    assert deleting.status.directive == Directive.ROLL_BACK and not deleting.release
    status = started("RollingBack", "RollingBack", "Done", directive="RollBack")
    done = decide(inputs(host_refresh(status=status), deleting=True))
    assert done.status.phase == Phase.ROLLED_BACK
    assert done.release and done.unmark_node


def test_abort_after_retiring_finishes_the_refresh() -> None:
    d = decide(inputs(host_refresh(abort=True, status=started("Devirtualizing", "Devirtualizing"))))
    assert d.status.directive == Directive.PROCEED
    assert d.status.phase == Phase.DEVIRTUALIZING


def test_rollback_deadline_with_a_silent_agent_fails() -> None:
    status = started("RollingBack", "RollingBack", directive="RollBack")
    d = decide(inputs(host_refresh(status=status), now=T0 + timedelta(seconds=1801), agent_age=120))
    assert d.status.phase == Phase.FAILED


def test_nested_active_condition_follows_the_agent() -> None:
    on = decide(inputs(host_refresh(status=started("BootingTarget", "BootingTarget", nestedSince=T0.isoformat()))))
    assert _cond(on, cond.NESTED_ACTIVE) == ("True", Reason.NESTED_ENABLED)
    assert _cond(on, cond.PREFLIGHT_PASSED) == ("True", Reason.PREFLIGHT_OK)
    off = decide(inputs(host_refresh(status=started("Verifying", "Verifying", nestedSeconds=12.5))))
    assert _cond(off, cond.NESTED_ACTIVE) == ("False", Reason.NESTED_DISABLED)
    assert off.status.nested_seconds == 12.5


def test_decide_is_idempotent() -> None:
    hr = host_refresh(status=started("Migrating", "Migrating"))
    first = decide(inputs(hr))
    second = decide(inputs(host_refresh(status=first.status.to_json())))
    assert second.status == first.status
    assert second.events == []


def test_a_failed_rollback_attempt_keeps_rolling_back_past_its_deadline_while_the_agent_lives() -> None:
    status = started("RollingBack", "RollingBack", "Failed", directive="RollBack", message="busy")
    d = decide(inputs(host_refresh(status=status), now=T0 + timedelta(seconds=10)))
    assert d.status.phase == Phase.ROLLING_BACK
    assert d.status.directive == Directive.ROLL_BACK
    assert _cond(d, cond.DEGRADED) == ("True", Reason.ROLLBACK_RETRYING)
    late = decide(inputs(host_refresh(status=status), now=T0 + timedelta(seconds=1801)))
    assert late.status.phase == Phase.ROLLING_BACK  # only the agent can end it; Failed would strand the node
    assert _cond(late, cond.DEGRADED) == ("True", Reason.DEADLINE_EXCEEDED)
    silent = decide(inputs(host_refresh(status=status), now=T0 + timedelta(seconds=1801), agent_age=300))
    assert silent.status.phase == Phase.FAILED


def test_a_refused_retire_can_still_roll_back() -> None:
    status = started("Retiring", "Retiring", "Failed", failureReason="RetireRefused")
    d = decide(inputs(host_refresh(status=status)))
    assert d.status.directive == Directive.ROLL_BACK


def test_recent_agent_reports_count_as_signs_of_life() -> None:
    now = T0 + timedelta(seconds=200)
    status = started("Migrating", "Migrating", updatedAt=(now - timedelta(seconds=5)).isoformat())
    d = decide(inputs(host_refresh(status=status), now=now, agent_age=120))
    assert d.status.directive == Directive.PROCEED


def test_a_rollback_that_leaves_vms_lost_ends_failed_naming_them() -> None:
    status = started(
        "RollingBack",
        "RollingBack",
        "Failed",
        directive="RollBack",
        failureReason="VMsLost",
        message="VMs running nowhere: vm2",
    )
    d = decide(inputs(host_refresh(status=status), now=T0 + timedelta(seconds=10)))
    assert d.status.phase == Phase.FAILED
    assert _cond(d, cond.DEGRADED) == ("True", Reason.VMS_LOST)
    assert any(e.reason == Reason.VMS_LOST and "vm2" in e.message for e in d.events)


def test_vms_lost_after_the_point_of_no_return_ends_failed_naming_them() -> None:
    status = started("Verifying", "Verifying", "Failed", failureReason="VMsLost", message="VMs running nowhere: vm1")
    d = decide(inputs(host_refresh(status=status)))
    assert d.status.phase == Phase.FAILED
    assert _cond(d, cond.DEGRADED) == ("True", Reason.VMS_LOST)


@pytest.mark.parametrize(
    ("took", "expected_phase", "expected_directive"),
    [
        (290, Phase.NESTED_ENABLING, Directive.PROCEED),  # within Partitioning's 300 s
        (305, Phase.ROLLING_BACK, Directive.ROLL_BACK),  # over it, though over by the time it was seen
    ],
)
def test_a_phase_that_overran_is_judged_when_it_ends(
    took: int, expected_phase: Phase, expected_directive: Directive
) -> None:
    """The operator last saw Partitioning; the agent's next report (Partitioning done, NestedEnabling
    started) came ``took`` seconds after Partitioning began: between two passes, the deadline went by."""
    ended_at = T0 + timedelta(seconds=took)
    later = ended_at + timedelta(seconds=30)  # a later report (a retry's) is no measure of the end
    status = started("Partitioning", "NestedEnabling", stepStartedAt=ended_at.isoformat(), updatedAt=later.isoformat())
    d = decide(inputs(host_refresh(status=status), now=ended_at + timedelta(seconds=1), agent_age=1.0))
    assert (d.status.phase, d.status.directive) == (expected_phase, expected_directive)
    if expected_directive == Directive.ROLL_BACK:
        degraded = cond.get(d.status.conditions, cond.DEGRADED)
        assert degraded is not None and degraded.reason == Reason.DEADLINE_EXCEEDED
        assert "Partitioning took 305s" in degraded.message


def test_a_phase_is_not_judged_when_the_operator_missed_the_steps_between() -> None:
    """The operator was away: it last saw Partitioning, the agent is in BootingTarget already. When
    Partitioning ended is unknown, so it is not judged (BootingTarget's own deadline still is)."""
    now = T0 + timedelta(seconds=400)
    status = started("Partitioning", "BootingTarget", stepStartedAt=(now - timedelta(seconds=5)).isoformat())
    d = decide(inputs(host_refresh(status=status), now=now, agent_age=1.0))
    assert (d.status.phase, d.status.directive) == (Phase.BOOTING_TARGET, Directive.PROCEED)


def test_the_next_pass_comes_when_the_phase_deadline_does() -> None:
    hr = host_refresh(status=started("BootingTarget", "BootingTarget"), timeouts={"bootingTargetSeconds": 1})
    assert phase_deadline(hr.status, hr.spec.timeouts) == T0 + timedelta(seconds=1)
    done = host_refresh(status=started("Succeeded", "Verifying", step_state="Done"))
    assert phase_deadline(done.status, done.spec.timeouts) is None


def _with_l0(hr: Any, l0: str | None, backend: str = "vmcall") -> Any:
    base = inputs(hr)
    agent = AgentView(renewed_at=base.agent.renewed_at, lease_seconds=30, l0=l0, l0_backend=backend)
    return decide(type(base)(**{**base.__dict__, "agent": agent}))


@pytest.mark.parametrize("l0", ["absent", "incompatible"])
def test_a_host_refresh_waits_untainted_on_a_node_without_an_l0_and_says_what_to_do(l0: str) -> None:
    d = _with_l0(host_refresh(), l0)
    assert (d.status.phase, d.status.directive) == (Phase.PENDING, Directive.WAIT)
    assert not d.mark_node and d.status.added_taints == []
    progressing = cond.get(d.status.conditions, cond.PROGRESSING)
    assert progressing is not None and progressing.reason == Reason.NO_L0
    assert "spec.scope: VMM" in progressing.message and "install the L0" in progressing.message
    assert "vmcall" in progressing.message


def test_a_vmm_refresh_needs_no_l0_and_an_unreported_l0_blocks_nothing() -> None:
    qemu = {"binary": "/var/lib/hostrefresh/images/qemu/bin/qemu-system-x86_64", "checksum": "sha256:" + "ab" * 32}
    vmm = host_refresh(scope="VMM", target={"version": "q2", "qemu": qemu})
    assert _with_l0(vmm, "absent").status.directive == Directive.PROCEED
    assert _with_l0(host_refresh(), None).status.directive == Directive.PROCEED  # an older agent
    assert _with_l0(host_refresh(), "present").status.directive == Directive.PROCEED


@pytest.mark.parametrize(
    ("scope", "key"), [("Host", "hostrefresh.io/host-version"), ("VMM", "hostrefresh.io/qemu-version")]
)
def test_a_success_records_on_the_node_what_it_runs_now(scope: str, key: str) -> None:
    target: dict[str, Any] = {"version": "6.12.4+kvm1", "kernel": "/k", "checksum": "sha256:" + "ab" * 32}
    if scope == "VMM":
        target = {"version": "6.12.4+kvm1", "qemu": {"binary": "/q", "checksum": "sha256:" + "ab" * 32}}
    status = started("Verifying", "Verifying", "Done")
    d = decide(inputs(host_refresh(status, scope=scope, target=target), now=T0 + timedelta(seconds=9)))
    assert d.status.phase == Phase.SUCCEEDED
    assert d.record_node is not None
    assert (d.record_node.version, d.record_node.refresh, d.record_node.at) == (
        "6.12.4+kvm1",
        "hr-a",
        T0 + timedelta(seconds=9),
    )
    assert d.record_node.keys[0] == key
    # Looked at again later (an event, an operator restart): the same record, with the same time.
    again = decide(inputs(host_refresh(d.status.to_json(), scope=scope, target=target), now=T0 + timedelta(hours=1)))
    assert again.record_node == d.record_node


@pytest.mark.parametrize(
    "status",
    [
        started("RollingBack", "RollingBack", "Done", directive="RollBack"),
        started("Retiring", "Retiring", "Failed", failureReason="VMsLost"),
        started("Migrating", "Migrating"),
        None,
    ],
)
def test_only_a_success_records_what_the_node_runs(status: dict[str, Any] | None) -> None:
    assert decide(inputs(host_refresh(status))).record_node is None


@pytest.mark.parametrize(
    ("status", "spec", "plan_paused", "expected"),
    [
        (None, {}, None, ("False", Reason.AS_EXPECTED)),
        (None, {"paused": True}, None, ("True", Reason.PAUSED_BY_USER)),
        (None, {}, True, ("True", Reason.PAUSED_BY_PLAN)),
        (None, {"paused": True}, True, ("True", Reason.PAUSED_BY_USER)),
        (started("Migrating", "Migrating"), {"paused": True}, None, ("True", Reason.PAUSED_BY_USER)),
        # A plan's pause holds starts only: its running children go on, and are not paused.
        (started("Migrating", "Migrating"), {}, True, ("False", Reason.AS_EXPECTED)),
        (started("Succeeded", "Verifying", "Done"), {"paused": True}, True, ("False", Reason.AS_EXPECTED)),
    ],
)
def test_the_paused_condition_says_who_holds_the_refresh(
    status: dict[str, Any] | None, spec: dict[str, Any], plan_paused: bool | None, expected: tuple[str, str]
) -> None:
    d = decide(inputs(host_refresh(status, **spec), plan_paused=plan_paused))
    assert _cond(d, cond.PAUSED) == expected
    paused = cond.get(d.status.conditions, cond.PAUSED)
    assert paused is not None and (paused.status != "True" or paused.message), "a hold says what holds it"


def test_the_paused_condition_moves_when_spec_paused_is_cleared() -> None:
    first = decide(inputs(host_refresh(started("Migrating", "Migrating"), paused=True)))
    later = T0 + timedelta(seconds=30)
    resumed = decide(inputs(host_refresh(first.status.to_json()), now=later, generation=2))
    assert _cond(resumed, cond.PAUSED) == ("False", Reason.AS_EXPECTED)
    paused = cond.get(resumed.status.conditions, cond.PAUSED)
    assert paused is not None and paused.last_transition_time == later and paused.observed_generation == 2


def test_ready_sums_up_why_a_refresh_waits_failed_or_rolled_back() -> None:
    """What `kubectl get hrf -o wide` shows (its Reason and Message columns are Ready's)."""
    waits = decide(inputs(host_refresh(), node=NodeView("node-a", ready=False)))
    ready = cond.get(waits.status.conditions, cond.READY)
    assert ready is not None and ready.reason == Reason.NOT_STARTED
    assert ready.message.startswith(f"waiting to start ({Reason.NODE_NOT_READY}): ")
    failed = decide(
        inputs(host_refresh(started("Retiring", "Retiring", "Failed", failureReason="VMsLost", message="vm-1 gone")))
    )
    ready = cond.get(failed.status.conditions, cond.READY)
    assert ready is not None and ready.reason == Reason.FAILED and "vm-1 gone" in ready.message
    aborted = decide(inputs(host_refresh(started("Migrating", "Migrating"), abort=True)))
    back = started("RollingBack", "RollingBack", "Done", directive="RollBack")
    back["conditions"] = aborted.status.to_json()["conditions"]
    rolled = decide(inputs(host_refresh(back)))
    ready = cond.get(rolled.status.conditions, cond.READY)
    assert ready is not None and ready.reason == Reason.ROLLED_BACK and "aborted by the user" in ready.message
