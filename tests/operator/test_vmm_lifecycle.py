"""Operator decisions for VMM-only refreshes (scope VMM): its steps, its point of no return, no taint."""

from __future__ import annotations

from typing import Any

import pytest

from hostrefresh.api import Directive, Phase, RefreshScope
from hostrefresh.api.names import REFRESH_TAINT_KEY
from hostrefresh.api.phases import VMM_STEPS, forward_steps
from hostrefresh.operator import conditions as cond
from hostrefresh.operator.lifecycle import decide
from hostrefresh.operator.nodemarks import mark, taints_node
from hostrefresh.operator.views import NodeView

from .helpers import NODE_A, host_refresh, inputs, started

QEMU = {"binary": "/var/lib/hostrefresh/images/qemu/bin/qemu-system-x86_64", "checksum": "sha256:" + "ab" * 32}


def vmm_refresh(status: dict[str, Any] | None = None, **spec: Any) -> Any:
    return host_refresh(status, scope="VMM", target={"version": "qemu-2", "qemu": QEMU}, **spec)


def test_a_vmm_refresh_is_granted_and_says_which_path_it_takes() -> None:
    d = decide(inputs(vmm_refresh()))
    assert d.status.directive == Directive.PROCEED and d.status.phase == Phase.PREFLIGHT
    assert "VMM-only refresh" in d.events[0].message and "never nested" in d.events[0].message
    progressing = cond.get(d.status.conditions, cond.PROGRESSING)
    assert progressing is not None and "VMM-only" in progressing.message


def test_the_steps_of_each_scope() -> None:
    assert forward_steps(RefreshScope.VMM) == VMM_STEPS == (Phase.PREFLIGHT, Phase.MIGRATING, Phase.VERIFYING)
    assert Phase.PARTITIONING in forward_steps(RefreshScope.HOST)


def test_the_operator_follows_preflight_straight_to_migrating() -> None:
    d = decide(inputs(vmm_refresh(started("Preflight", "Migrating"))))
    assert d.status.phase == Phase.MIGRATING and d.status.directive == Directive.PROCEED


@pytest.mark.parametrize(
    ("step", "phase"),
    [("Migrating", Phase.ROLLING_BACK), ("Verifying", Phase.FAILED)],
)
def test_a_failure_before_verifying_rolls_back_after_it_fails(step: str, phase: Phase) -> None:
    status = started(step, step, "Failed", failureReason="HandoverFailed", message="vm3: no")
    d = decide(inputs(vmm_refresh(status)))
    assert d.status.phase == phase


def test_success_names_the_qemu_and_nested_stays_off() -> None:
    d = decide(inputs(vmm_refresh(started("Verifying", "Verifying", "Done"))))
    assert d.status.phase == Phase.SUCCEEDED
    ready = cond.get(d.status.conditions, cond.READY)
    assert ready is not None and ready.message == "node runs QEMU qemu-2"
    nested = cond.get(d.status.conditions, cond.NESTED_ACTIVE)
    assert nested is not None and nested.status == "False"


def test_a_vmm_refresh_annotates_the_node_but_never_taints_it() -> None:
    assert not taints_node(RefreshScope.VMM) and taints_node(RefreshScope.HOST)
    patch = mark(NODE_A, "hr-a", [], [], taint=taints_node(RefreshScope.VMM))
    assert patch.taints is None and patch.added_taints == []
    assert patch.annotations == {"hostrefresh.io/refreshing": "hr-a"}
    tainted = mark(NodeView(name="node-a"), "hr-a", [], [])
    assert tainted.added_taints == [REFRESH_TAINT_KEY]


@pytest.mark.parametrize(("scope", "step"), [("VMM", "Verifying"), ("Host", "Devirtualizing")])
def test_a_rollback_that_came_too_late_lets_the_refresh_finish(scope: str, step: str) -> None:
    """The operator asked for a rollback (an abort) just as the agent passed the point of no return."""
    late = started(
        "RollingBack",
        step,
        "Failed",
        directive="RollBack",
        failureReason="RollbackImpossible",
        message="the new QEMU is every VM's own already",
    )
    hr = vmm_refresh(late, abort=True) if scope == "VMM" else host_refresh(late, abort=True)
    d = decide(inputs(hr))
    assert d.status.directive == Directive.PROCEED
    degraded = cond.get(d.status.conditions, cond.DEGRADED)
    assert degraded is not None and degraded.reason == "RollbackTooLate", degraded
    assert [e.reason for e in d.events] == ["RollbackTooLate"]
    # Next pass: the refresh follows the agent forward and does not roll back again (abort stays set).
    again = decide(inputs(hr.model_copy(update={"status": d.status})))
    assert again.status.directive == Directive.PROCEED and again.status.phase == Phase(step)
    done = started(step, "Verifying", "Done", directive="Proceed")
    finished = decide(inputs(vmm_refresh(done, abort=True) if scope == "VMM" else host_refresh(done, abort=True)))
    assert finished.status.phase == Phase.SUCCEEDED
