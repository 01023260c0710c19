"""The Argo CD health checks (Lua, run by lupa as Argo CD runs them: ``obj`` global, a table returned)
on finished, failed, halted, paused and running objects; and the GitOps examples are valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

from hostrefresh.api import HostRefresh, RefreshPlan

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "deploy" / "argocd" / "hostrefresh.io"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((CHECKS / kind / "health.lua").read_text())
    return str(result["status"]), str(result["message"])


def c(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def refresh(status: dict[str, Any] | None, generation: int = 1, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "r", "generation": generation}, "spec": {"nodeName": "n", **spec}}
    if status is not None:
        obj["status"] = {"observedGeneration": 1, **status}
    return obj


@pytest.mark.parametrize(
    ("obj", "expected", "said"),
    [
        (refresh(None), "Progressing", "Waiting for the hostrefresh operator"),
        (
            refresh({"phase": "Migrating", "conditions": [c("Progressing", "True", "InProgress", "phase Migrating")]}),
            "Progressing",
            "Migrating",
        ),
        (
            refresh(
                {"phase": "Pending", "conditions": [c("Progressing", "False", "NodeBusy", "another refresh runs")]}
            ),
            "Progressing",
            "another refresh runs",
        ),
        (
            refresh({"phase": "Succeeded", "conditions": [c("Ready", "True", "RefreshSucceeded", "node runs 2.0")]}),
            "Healthy",
            "node runs 2.0",
        ),
        (
            refresh(
                {"phase": "RolledBack", "conditions": [c("Degraded", "True", "StepFailed", "step Migrating failed")]}
            ),
            "Degraded",
            "RolledBack: step Migrating failed",
        ),
        (
            refresh({"phase": "Failed", "conditions": [c("Stalled", "True", "RefreshFailed", "deadline")]}),
            "Degraded",
            "Failed: deadline",
        ),
        (
            refresh({"phase": "Migrating", "conditions": [c("Stalled", "True", "HeldAfterFailure", "set spec.abort")]}),
            "Degraded",
            "set spec.abort",
        ),
        (refresh({"phase": "Migrating"}, paused=True), "Suspended", "Paused"),
        (refresh({"phase": "Succeeded"}, generation=2), "Progressing", "latest spec"),
    ],
)
def test_host_refresh_health(obj: dict[str, Any], expected: str, said: str) -> None:
    status, message = health("HostRefresh", obj)
    assert status == expected
    assert said in message


def plan(status: dict[str, Any] | None, generation: int = 1, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "p", "generation": generation}, "spec": dict(spec)}
    if status is not None:
        obj["status"] = {"observedGeneration": 1, "nodes": 4, **status}
    return obj


@pytest.mark.parametrize(
    ("obj", "expected", "said"),
    [
        (plan(None), "Progressing", "Waiting"),
        (
            plan(
                {
                    "active": 2,
                    "succeeded": 1,
                    "conditions": [c("Ready", "False", "RollingOut"), c("Reconciling", "True", "RollingOut")],
                }
            ),
            "Progressing",
            "1/4 nodes refreshed, 2 active",
        ),
        (
            plan({"succeeded": 4, "conditions": [c("Ready", "True", "RolloutComplete", "all 4 nodes run 2.0")]}),
            "Healthy",
            "all 4 nodes run 2.0",
        ),
        (
            plan(
                {"failed": 1, "conditions": [c("Stalled", "True", "FailureThresholdReached", "1 refresh(es) failed")]}
            ),
            "Degraded",
            "1 failed: 1 refresh(es) failed",
        ),
        (
            plan(
                {"failed": 1, "paused": True, "conditions": [c("Paused", "True", "FailureThresholdReached", "halted")]}
            ),
            "Degraded",
            "halted",
        ),
        (
            plan({"failed": 1, "conditions": [c("Progressing", "False", "RefreshFailed", "nothing left")]}),
            "Degraded",
            "ended with failures",
        ),
        (plan({"conditions": [c("Paused", "True", "PausedBySpec")]}, paused=True), "Suspended", "Paused (spec.paused)"),
        (
            plan({"succeeded": 4, "conditions": [c("Ready", "True", "RolloutComplete")]}, generation=3),
            "Progressing",
            "latest spec",
        ),
    ],
)
def test_refresh_plan_health(obj: dict[str, Any], expected: str, said: str) -> None:
    status, message = health("RefreshPlan", obj)
    assert status == expected
    assert said in message


def test_argocd_cm_example_carries_the_same_scripts() -> None:
    cm = yaml.safe_load((ROOT / "examples" / "argocd" / "argocd-cm-health.yaml").read_text())
    for kind in ("HostRefresh", "RefreshPlan"):
        assert (
            cm["data"][f"resource.customizations.health.hostrefresh.io_{kind}"]
            == (CHECKS / kind / "health.lua").read_text()
        )


def test_gitops_examples_are_valid() -> None:
    plans = [d for p in sorted((ROOT / "examples").rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    kinds = {d["kind"] for d in plans}
    assert {"RefreshPlan", "GitRepository", "Application", "ConfigMap"} <= kinds
    for doc in plans:
        if doc["kind"] == "RefreshPlan":
            RefreshPlan.model_validate(doc)
        if doc["kind"] == "HostRefresh":
            HostRefresh.model_validate(doc)
    flux = next(d for d in plans if d["kind"] == "Kustomization" and "sourceRef" in d.get("spec", {}))
    assert flux["spec"]["wait"] is True and (ROOT / flux["spec"]["path"]).is_dir()
    app = next(d for d in plans if d["kind"] == "Application")
    assert (ROOT / app["spec"]["source"]["path"]).is_dir()
