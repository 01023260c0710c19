"""`kubectl hostrefresh approve` against the real control plane, through the real kubectl: it sets the
approval annotation to the wave that waits, never lowers one, and refuses what has no gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube import Client

from hostrefresh.api.names import APPROVED_WAVE_ANNOTATION
from hostrefresh.cli.errors import Exit
from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.resources import RefreshPlanResource
from tests.cli.fleet import TARGET, Kubectl, client, make_refresh, plugin_dir, set_plan_status, unique

pytestmark = pytest.mark.integration


def _plan(c: Client, name: str, approval: dict[str, bool] | None) -> None:
    spec = {"nodeSelector": {"matchLabels": {"pool": name}}, "target": TARGET}
    if approval is not None:
        spec["approval"] = approval
    body = {"apiVersion": "hostrefresh.io/v1alpha1", "kind": "RefreshPlan", "metadata": {"name": name}, "spec": spec}
    c.create(RefreshPlanResource.from_dict(body))


def _approved(c: Client, name: str) -> str | None:
    obj = c.get(RefreshPlanResource, name).to_dict()  # type: ignore[no-untyped-call]
    annotations: dict[str, str] = obj["metadata"].get("annotations") or {}
    return annotations.get(APPROVED_WAVE_ANNOTATION)


def test_approve_sets_the_waiting_wave_and_never_lowers_it(crds: ControlPlane, tmp_path: Path) -> None:
    c, kc = client(crds), Kubectl(crds, plugin_dir(tmp_path))
    name = unique("appr")
    _plan(c, name, {"afterCanary": True})
    set_plan_status(c, name, {"wavesStarted": 1, "awaitingApproval": 2})
    run = kc.run("approve", name)
    assert run.returncode == Exit.OK and f"refreshplan {name}: wave 2 approved (waited for approval)" in run.stdout
    assert _approved(c, name) == "2"
    again = kc.run("approve", f"plan/{name}")
    assert again.returncode == Exit.OK and "waves up to 2 are approved already" in again.stdout
    ahead = kc.run("approve", name, "--wave", "5")
    assert ahead.returncode == Exit.OK and "wave 5 approved" in ahead.stdout and _approved(c, name) == "5"
    lower = kc.run("approve", name, "--wave", "3")
    assert lower.returncode == Exit.OK and _approved(c, name) == "5"


def test_with_no_wave_waiting_the_next_wave_is_approved_ahead(crds: ControlPlane, tmp_path: Path) -> None:
    c, kc = client(crds), Kubectl(crds, plugin_dir(tmp_path))
    name = unique("ahead")
    _plan(c, name, {"everyWave": True})
    set_plan_status(c, name, {"wavesStarted": 3})
    run = kc.run("approve", name)
    assert run.returncode == Exit.OK and "wave 4 approved (approved ahead of its turn)" in run.stdout
    assert _approved(c, name) == "4"


def test_what_has_no_approval_gate_is_refused_and_left_unchanged(crds: ControlPlane, tmp_path: Path) -> None:
    c, kc = client(crds), Kubectl(crds, plugin_dir(tmp_path))
    name = unique("nogate")
    _plan(c, name, None)
    run = kc.run("approve", name)
    assert run.returncode == Exit.USAGE and "has no approval gate" in run.stderr and "spec.approval" in run.stderr
    assert _approved(c, name) is None
    refresh = unique("hr")
    make_refresh(c, refresh, "node-x", None, {})
    wrong = kc.run("approve", f"hostrefresh/{refresh}")
    assert wrong.returncode == Exit.USAGE and "is no RefreshPlan" in wrong.stderr, wrong.stderr
    bad = kc.run("approve", name, "--wave", "0")
    assert bad.returncode == Exit.USAGE and "is not a wave number" in bad.stderr
