"""The plan's gates held by people and by monitoring: approval after the canary or before every wave,
and the Prometheus health gate, as pure planning decisions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hostrefresh.api import RefreshPlanStatus
from hostrefresh.api.names import APPROVED_WAVE_ANNOTATION
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.views import AgentView, NodeView
from hostrefresh.operator.waves import GateReading, OwnedRefresh, PlanDecision, PlanInputs, plan

from .helpers import T0
from .test_waves import active, done, nodes, spec


def step(
    s: Any,
    ns: tuple[NodeView, ...],
    owned: tuple[OwnedRefresh, ...] = (),
    status: RefreshPlanStatus | None = None,
    **extra: Any,
) -> PlanDecision:
    agents = {n.name: AgentView(renewed_at=T0) for n in ns}
    return plan(PlanInputs("p", 1, s, status or RefreshPlanStatus(), ns, agents, owned, T0, **extra))


def progressing(d: PlanDecision) -> tuple[str, str]:
    [c] = [c for c in d.status.conditions if c.type == "Progressing"]
    return c.reason, c.message


def test_after_the_canary_the_plan_waits_for_approval_then_rolls_on() -> None:
    s = spec(maxUnavailable=3, canary=1, approval={"afterCanary": True})
    first = step(s, nodes(6))
    assert first.start == ["n00"] and first.status.waves_started == 1
    canary_done = (done("n00", at=T0 - timedelta(seconds=1)),)

    held = step(s, nodes(6), canary_done, first.status)
    assert held.start == [] and held.status.awaiting_approval == 2
    reason, message = progressing(held)
    assert reason == Reason.AWAITING_APPROVAL
    assert "kubectl hostrefresh approve p" in message and f"{APPROVED_WAVE_ANNOTATION}=2" in message
    assert [e[1] for e in held.events] == [Reason.AWAITING_APPROVAL]
    again = step(s, nodes(6), canary_done, held.status)
    assert again.start == [] and again.events == []  # said once, not at every pass

    for stale in ("1", "0"):  # an approval of an earlier wave opens nothing
        assert step(s, nodes(6), canary_done, held.status, approved_wave=stale).start == []
    approved = step(s, nodes(6), canary_done, held.status, approved_wave="2")
    assert approved.start == ["n01", "n02", "n03"] and approved.status.awaiting_approval is None
    assert approved.status.waves_started == 2
    # Past the canary gate, freed slots refill without another approval.
    after = (*canary_done, done("n01", at=T0 - timedelta(seconds=1)), active("n02"), active("n03"))
    assert step(s, nodes(6), after, approved.status, approved_wave="2").start == ["n04"]


def test_the_approval_is_asked_for_only_once_the_canary_soaked() -> None:
    s = spec(maxUnavailable=2, canary=1, soakSeconds=600, approval={"afterCanary": True})
    soaking = step(s, nodes(4), (done("n00", at=T0 - timedelta(seconds=10)),), RefreshPlanStatus(waves_started=1))
    assert soaking.status.awaiting_approval is None and progressing(soaking)[0] == Reason.SOAKING
    soaked = step(s, nodes(4), (done("n00", at=T0 - timedelta(seconds=601)),), RefreshPlanStatus(waves_started=1))
    assert soaked.status.awaiting_approval == 2


def test_without_approval_settings_nothing_waits() -> None:
    d = step(spec(maxUnavailable=3, canary=1), nodes(6), (done("n00", at=T0 - timedelta(seconds=1)),))
    assert d.start == ["n01", "n02", "n03"] and d.status.awaiting_approval is None


def test_every_wave_goes_whole_and_waits_for_approval_before_the_next() -> None:
    s = spec(maxUnavailable=2, canary=0, approval={"everyWave": True})
    wave1 = step(s, nodes(6))
    assert wave1.start == ["n00", "n01"] and wave1.status.wave_starts == 2
    assert wave1.status.awaiting_approval is None  # the first wave needs none
    # One of the wave ended: its slot is not refilled mid-wave.
    half = (done("n00", at=T0 - timedelta(seconds=1)), active("n01"))
    assert step(s, nodes(6), half, wave1.status).start == []
    whole = (done("n00", at=T0 - timedelta(seconds=1)), done("n01", at=T0 - timedelta(seconds=1)))
    held = step(s, nodes(6), whole, wave1.status)
    assert held.start == [] and held.status.awaiting_approval == 2
    wave2 = step(s, nodes(6), whole, held.status, approved_wave="2")
    assert wave2.start == ["n02", "n03"] and wave2.status.waves_started == 2
    three = (*whole, done("n02", at=T0 - timedelta(seconds=1)), done("n03", at=T0 - timedelta(seconds=1)))
    assert step(s, nodes(6), three, wave2.status, approved_wave="2").status.awaiting_approval == 3
    # Approving a later wave ahead of time covers the ones before it.
    assert step(s, nodes(6), three, wave2.status, approved_wave="9").start == ["n04", "n05"]


def test_every_wave_with_a_start_budget_completes_its_wave_before_stopping() -> None:
    s = spec(maxUnavailable=3, canary=0, approval={"everyWave": True})
    paced = step(s, nodes(6), start_budget=1)
    assert paced.start == ["n00"] and paced.deferred == 2 and paced.status.wave_starts == 1
    rest = step(s, nodes(6), (active("n00"),), paced.status)
    assert rest.start == ["n01", "n02"] and rest.status.wave_starts == 3


def test_an_annotation_that_is_no_wave_number_is_named_and_approves_nothing() -> None:
    s = spec(maxUnavailable=3, canary=1, approval={"afterCanary": True})
    d = step(
        s,
        nodes(4),
        (done("n00", at=T0 - timedelta(seconds=1)),),
        RefreshPlanStatus(waves_started=1),
        approved_wave="yes",
    )
    assert d.start == []
    message = progressing(d)[1]
    assert f"annotation {APPROVED_WAVE_ANNOTATION}='yes' is not a wave number" in message


def test_the_prometheus_gate_holds_every_start_until_quiet() -> None:
    s = spec(maxUnavailable=2, canary=0, healthGates={"prometheus": {"alerts": ["NodeDown"]}})
    unread = step(s, nodes(3))
    assert unread.start == [] and progressing(unread) == (
        Reason.HEALTH_GATE,
        "spec.healthGates.prometheus: the Prometheus gate has not been read yet",
    )
    firing = step(s, nodes(3), gate=GateReading(False, "alert NodeDown is firing (1 series)"))
    assert firing.start == [] and "alert NodeDown is firing" in progressing(firing)[1]
    quiet = step(s, nodes(3), gate=GateReading(True, ""))
    assert quiet.start == ["n00", "n01"]
    # A refill is a start too: the gate holds it.
    refill = step(s, nodes(3), (done("n00", at=T0 - timedelta(seconds=1)), active("n01")), gate=GateReading(False, "x"))
    assert refill.start == []
    # Without such a gate, a reading is not needed.
    assert step(spec(maxUnavailable=1, canary=0), nodes(3)).start == ["n00"]
