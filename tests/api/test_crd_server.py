"""The CRDs on a real kube-apiserver: established, defaults filled, bad objects rejected by field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostrefresh.api.quantity import MIN_BYTES, parse_quantity
from hostrefresh.controlplane import ControlPlane
from tests.api.quantity_table import ACCEPTED, EDGES, REJECTED

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]

CHECKSUM = "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
HOST_REFRESH: dict[str, Any] = {
    "apiVersion": "hostrefresh.io/v1alpha1",
    "kind": "HostRefresh",
    "metadata": {"name": "invalid-hr"},
    "spec": {"nodeName": "node-a", "target": {"version": "6.12.4", "kernel": "/boot/vmlinuz", "checksum": CHECKSUM}},
}
PLAN: dict[str, Any] = {
    "apiVersion": "hostrefresh.io/v1alpha1",
    "kind": "RefreshPlan",
    "metadata": {"name": "invalid-plan"},
    "spec": {
        "nodeSelector": {"matchLabels": {"pool": "compute"}},
        "target": {"version": "6.12.4", "kernel": "/boot/vmlinuz", "checksum": CHECKSUM},
    },
}


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy of ``obj`` with dotted ``path`` set (``value`` None deletes the key)."""
    out = copy.deepcopy(obj)
    node = out
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return out


def hr(path: str, value: Any) -> dict[str, Any]:
    return _set(HOST_REFRESH, path, value)


def plan(path: str, value: Any) -> dict[str, Any]:
    return _set(PLAN, path, value)


# (case id, object, a fragment the server's message must contain: the offending field)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("missing-nodeName", hr("spec.nodeName", None), "spec.nodeName"),
    ("empty-nodeName", hr("spec.nodeName", ""), "spec.nodeName"),
    ("uppercase-nodeName", hr("spec.nodeName", "Node_A"), "spec.nodeName"),
    ("missing-target", hr("spec.target", None), "spec.target"),
    ("missing-target-version", hr("spec.target.version", None), "spec.target.version"),
    ("missing-kernel", hr("spec.target.kernel", None), "spec.target.kernel"),
    ("bad-checksum", hr("spec.target.checksum", "md5:abc"), "spec.target.checksum"),
    ("missing-checksum", hr("spec.target.checksum", None), "spec.target.kernel and spec.target.checksum are required"),
    (
        "plan-missing-checksum",
        plan("spec.target.checksum", None),
        "spec.target.kernel and spec.target.checksum are required when spec.template.scope is Host",
    ),
    ("bad-scope", hr("spec.scope", "Kernel"), "spec.scope"),
    ("vmm-without-qemu", hr("spec.scope", "VMM"), "spec.target.qemu is required when spec.scope is VMM"),
    (
        "plan-vmm-without-qemu",
        plan("spec.template", {"scope": "VMM"}),
        "spec.target.qemu is required when spec.template.scope is VMM",
    ),
    (
        "vmm-qemu-without-checksum",
        _set(hr("spec.scope", "VMM"), "spec.target.qemu", {"binary": "/var/lib/hostrefresh/images/qemu"}),
        "spec.target.qemu.checksum",
    ),
    (
        "vmm-qemu-dotdot",
        _set(hr("spec.scope", "VMM"), "spec.target.qemu", {"binary": "/images/../usr/bin/x", "checksum": CHECKSUM}),
        "spec.target.qemu.binary",
    ),
    ("relative-kernel", hr("spec.target.kernel", "boot/vmlinuz"), "spec.target.kernel"),
    ("dotdot-kernel", hr("spec.target.kernel", "/var/lib/hostrefresh/images/../../../dev/zero"), "'..' segments"),
    ("dotdot-initrd", hr("spec.target.initrd", "/var/lib/hostrefresh/images/.."), "spec.target.initrd"),
    ("plan-dotdot-kernel", plan("spec.target.kernel", "/images/../etc/shadow"), "spec.target.kernel"),
    ("control-char-kernel", hr("spec.target.kernel", "/boot/vmlinuz\n"), "spec.target.kernel"),
    ("kernel-longer-than-the-l0-takes", hr("spec.target.kernel", "/" + "k" * 255), "spec.target.kernel"),
    ("cmdline-longer-than-the-l0-takes", hr("spec.target.cmdline", "x" * 1024), "spec.target.cmdline"),
    ("zero-cpus", hr("spec.partition.cpus", 0), "spec.partition.cpus"),
    ("negative-cpus", hr("spec.partition.cpus", -2), "spec.partition.cpus"),
    ("cpus-as-string", hr("spec.partition.cpus", "two"), "spec.partition.cpus"),
    ("malformed-memory", hr("spec.partition.memory", "4 gigs"), "spec.partition.memory"),
    ("zero-memory", hr("spec.partition.memory", "0Gi"), "spec.partition.memory"),
    ("negative-memory", hr("spec.partition.memory", "-1Gi"), "spec.partition.memory"),
    ("timeout-zero", hr("spec.timeouts.preflightSeconds", 0), "spec.timeouts.preflightSeconds"),
    ("timeout-too-long", hr("spec.timeouts.migratingSeconds", 90000), "spec.timeouts.migratingSeconds"),
    ("silence-too-short", hr("spec.timeouts.agentSilenceSeconds", 1), "spec.timeouts.agentSilenceSeconds"),
    # Shorter than two heartbeat renewals of an agent with the default --lease-seconds (every 10 s).
    ("silence-below-two-heartbeats", hr("spec.timeouts.agentSilenceSeconds", 19), "--lease-seconds"),
    ("memory-above-1Ei", hr("spec.partition.memory", "2Ei"), "spec.partition.memory"),
    ("memory-exponent-above-1Ei", hr("spec.partition.memory", "1e19"), "spec.partition.memory"),
    ("memory-capital-K", hr("spec.partition.memory", "4K"), "spec.partition.memory"),
    (
        "downtime-budget-zero",
        hr("spec.handover.downtimeBudgetMillis", 0),
        "spec.handover.downtimeBudgetMillis",
    ),
    ("parallel-too-high", hr("spec.handover.maxParallel", 1000), "spec.handover.maxParallel"),
    ("zeroCopy-wrong-type", hr("spec.handover.zeroCopy", "yes"), "spec.handover.zeroCopy"),
    ("unknown-failure-policy", hr("spec.failurePolicy", "Ignore"), "spec.failurePolicy"),
    ("unknown-vm-policy", hr("spec.unmovableVMPolicy", "Migrate"), "spec.unmovableVMPolicy"),
    ("unknown-field", hr("spec.partiton", {"cpus": 2}), "spec.partiton"),
    ("unknown-nested-field", hr("spec.handover.zeroCopyy", True), "spec.handover.zeroCopyy"),
    ("plan-zero-percent", plan("spec.maxUnavailable", "0%"), "spec.maxUnavailable"),
    ("plan-150-percent", plan("spec.maxUnavailable", "150%"), "spec.maxUnavailable"),
    ("plan-zero-count", plan("spec.maxUnavailable", 0), "spec.maxUnavailable"),
    ("plan-negative-count", plan("spec.maxUnavailable", -1), "spec.maxUnavailable"),
    ("plan-word-unavailable", plan("spec.maxUnavailable", "three"), "spec.maxUnavailable"),
    ("plan-zone-limit-zero", plan("spec.maxUnavailablePerZone", "0%"), "spec.maxUnavailablePerZone"),
    ("plan-negative-canary", plan("spec.canary", -1), "spec.canary"),
    ("plan-soak-negative", plan("spec.soakSeconds", -5), "spec.soakSeconds"),
    ("plan-threshold-zero", plan("spec.failureThreshold", 0), "spec.failureThreshold"),
    ("plan-empty-selector", plan("spec.nodeSelector", {}), "spec.nodeSelector"),
    ("plan-empty-matchLabels", plan("spec.nodeSelector", {"matchLabels": {}}), "spec.nodeSelector"),
    ("plan-allNodes-and-selector", plan("spec.allNodes", True), "spec.allNodes"),
    ("plan-missing-selector", plan("spec.nodeSelector", None), "spec.nodeSelector"),
    (
        "plan-in-without-values",
        plan("spec.nodeSelector", {"matchExpressions": [{"key": "pool", "operator": "In"}]}),
        "spec.nodeSelector.matchExpressions[0].values",
    ),
    (
        "plan-notin-empty-values",
        plan("spec.nodeSelector", {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": []}]}),
        "spec.nodeSelector.matchExpressions[0].values",
    ),
    (
        "plan-exists-with-values",
        plan("spec.nodeSelector", {"matchExpressions": [{"key": "pool", "operator": "Exists", "values": ["a"]}]}),
        "spec.nodeSelector.matchExpressions[0].values",
    ),
    # The plan's name is the value of the hostrefresh.io/plan label on its HostRefreshes (63 at most).
    ("plan-name-64-chars", plan("metadata.name", "p" * 64), "metadata.name"),
    (
        "plan-bad-operator",
        plan("spec.nodeSelector", {"matchExpressions": [{"key": "a", "operator": "Like"}]}),
        "spec.nodeSelector.matchExpressions[0].operator",
    ),
    (
        "window-bad-cron",
        plan("spec.maintenanceWindows", [{"schedule": "every night", "duration": "4h"}]),
        "spec.maintenanceWindows[0].schedule",
    ),
    (
        "window-minute-61",
        plan("spec.maintenanceWindows", [{"schedule": "61 2 * * *", "duration": "4h"}]),
        "spec.maintenanceWindows[0].schedule",
    ),
    (
        "window-four-fields",
        plan("spec.maintenanceWindows", [{"schedule": "0 2 * *", "duration": "4h"}]),
        "spec.maintenanceWindows[0].schedule",
    ),
    (
        "window-bad-duration",
        plan("spec.maintenanceWindows", [{"schedule": "0 2 * * *", "duration": "4 hours"}]),
        "spec.maintenanceWindows[0].duration",
    ),
    (
        "window-too-long",
        plan("spec.maintenanceWindows", [{"schedule": "0 2 * * *", "duration": "200h"}]),
        "spec.maintenanceWindows[0].duration",
    ),
    (
        "window-missing-duration",
        plan("spec.maintenanceWindows", [{"schedule": "0 2 * * *"}]),
        "spec.maintenanceWindows[0].duration",
    ),
    (
        "window-bad-timezone",
        plan("spec.maintenanceWindows", [{"schedule": "0 2 * * *", "duration": "4h", "timeZone": "Mars Time!"}]),
        "spec.maintenanceWindows[0].timeZone",
    ),
    ("plan-template-cpus", plan("spec.template", {"partition": {"cpus": 0}}), "spec.template.partition.cpus"),
    ("plan-paused-wrong-type", plan("spec.paused", "no"), "spec.paused"),
]


@pytest.mark.parametrize(("case", "obj", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_object_is_rejected_naming_the_field(
    crds: ControlPlane, case: str, obj: dict[str, Any], field: str
) -> None:
    result = crds.kubectl("create", "-f", "-", stdin=json.dumps(obj), check=False)
    assert result.returncode != 0, f"{case}: the server accepted an invalid object"
    assert field in result.stderr, f"{case}: message does not name {field}: {result.stderr}"
    # nothing was created
    kind = obj["kind"].lower()
    got = crds.kubectl("get", kind, obj["metadata"]["name"], "--ignore-not-found", "-o", "name")
    assert got.stdout.strip() == ""


def test_at_least_25_invalid_cases() -> None:
    assert len(INVALID) >= 25


def test_node_name_is_immutable(crds: ControlPlane) -> None:
    obj = _set(HOST_REFRESH, "metadata.name", "immutable-node")
    crds.kubectl("create", "-f", "-", stdin=json.dumps(obj))
    try:
        changed = _set(obj, "spec.nodeName", "node-b")
        result = crds.kubectl("replace", "-f", "-", stdin=json.dumps(changed), check=False)
        assert result.returncode != 0
        assert "spec.nodeName" in result.stderr and "immutable" in result.stderr
        got = crds.kubectl("get", "hostrefresh", "immutable-node", "-o", "jsonpath={.spec.nodeName}")
        assert got.stdout == "node-a"
    finally:
        crds.kubectl("delete", "hostrefresh", "immutable-node", "--wait=false")


def test_examples_are_accepted_and_defaulted(crds: ControlPlane) -> None:
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        crds.kubectl("apply", "-f", str(path))
        for doc in yaml.safe_load_all(path.read_text()):
            got = json.loads(crds.kubectl("get", doc["kind"].lower(), doc["metadata"]["name"], "-o", "json").stdout)
            spec = got["spec"]
            if doc["kind"] == "HostRefresh":
                assert spec["timeouts"]["preflightSeconds"] == 120
                assert spec["handover"]["downtimeBudgetMillis"] == 500
                assert spec["failurePolicy"] == "RollBack"
                assert spec["paused"] is False
            else:
                assert spec["template"]["partition"] == {"cpus": 2, "memory": "4Gi"}
                assert spec["template"]["timeouts"]["agentSilenceSeconds"] == 60
                assert spec["healthGates"] == {
                    "requireNodeReady": True,
                    "requireAgentAlive": True,
                    "maxFailed": 0,
                }
                assert spec["maintenanceWindows"][0]["timeZone"] == "Europe/Berlin"
                assert spec["allNodes"] is False
            crds.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"])


def test_percent_and_integer_max_unavailable_accepted(crds: ControlPlane) -> None:
    for name, value in (("pct", "100%"), ("one-pct", "1%"), ("int", 3)):
        obj = _set(_set(PLAN, "metadata.name", f"ok-{name}"), "spec.maxUnavailable", value)
        crds.kubectl("create", "-f", "-", stdin=json.dumps(obj))
        crds.kubectl("delete", "refreshplan", f"ok-{name}")
    every = _set(_set(_set(PLAN, "metadata.name", "all-nodes"), "spec.nodeSelector", {}), "spec.allNodes", True)
    crds.kubectl("create", "-f", "-", stdin=json.dumps(every))
    crds.kubectl("delete", "refreshplan", "all-nodes")


def _condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-12-07T12:00:00Z",
    }


def test_printer_columns(crds: ControlPlane) -> None:
    obj = _set(HOST_REFRESH, "metadata.name", "columns")
    crds.kubectl("create", "-f", "-", stdin=json.dumps(obj))
    try:
        out = crds.kubectl("get", "hrf").stdout.splitlines()
        assert out[0].split() == ["NAME", "NODE", "PHASE", "TARGET", "SCOPE", "NESTED", "AGE"]
        row = next(line.split() for line in out if line.startswith("columns"))
        assert row[1:4] == ["node-a", "6.12.4", "Host"]
        wide = crds.kubectl("get", "hrf", "-o", "wide").stdout.splitlines()
        assert wide[0].split() == ["NAME", "NODE", "PHASE", "TARGET", "SCOPE", "NESTED", "AGE", "REASON", "MESSAGE"]
        status = {"conditions": [_condition("Ready", "False", "NotStarted", "waiting to start (NodeBusy): held")]}
        crds.kubectl(
            "patch", "hrf", "columns", "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
        )
        line = next(x for x in crds.kubectl("get", "hrf", "-o", "wide").stdout.splitlines() if "columns" in x)
        assert line.rstrip().endswith("NotStarted   waiting to start (NodeBusy): held"), row
        plan_obj = _set(PLAN, "metadata.name", "columns-plan")
        crds.kubectl("create", "-f", "-", stdin=json.dumps(plan_obj))
        header = crds.kubectl("get", "rplan").stdout.splitlines()[0].split()
        assert header == ["NAME", "TARGET", "NODES", "SUCCEEDED", "FAILED", "ACTIVE", "PAUSED", "READY", "AGE"]
        crds.kubectl("delete", "rplan", "columns-plan")
    finally:
        crds.kubectl("delete", "hrf", "columns")


def _server_accepts(crds: ControlPlane, obj: dict[str, Any]) -> tuple[bool, str]:
    result = crds.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(obj), check=False)
    return result.returncode == 0, result.stderr


def test_memory_quantities_the_server_accepts_are_the_ones_the_agent_parses(crds: ControlPlane) -> None:
    """The parser's table, on the real API server: what it lets through, the agent can take."""
    for text, expected in ACCEPTED:
        accepted, err = _server_accepts(crds, hr("spec.partition.memory", text))
        assert accepted, f"{text!r}: the server refused a quantity of the table: {err}"
        assert parse_quantity(text) == expected
    for text in REJECTED:
        accepted, err = _server_accepts(crds, hr("spec.partition.memory", text))
        assert not accepted, f"{text!r}: the server accepted a quantity the agent refuses"
        assert "spec.partition.memory" in err, err
    for text in EDGES:
        accepted, _ = _server_accepts(crds, hr("spec.partition.memory", text))
        if accepted:
            assert parse_quantity(text) >= MIN_BYTES, text


def test_long_names_within_limits_are_accepted(crds: ControlPlane) -> None:
    """A 63-character plan name, and a HostRefresh of a node with a 253-character name."""
    accepted, err = _server_accepts(crds, plan("metadata.name", "p" * 63))
    assert accepted, err
    node = ("n" * 62 + ".") * 4 + "n"
    assert len(node) == 253
    accepted, err = _server_accepts(crds, hr("spec.nodeName", node))
    assert accepted, err


def test_the_longest_target_the_l0_takes_is_accepted(crds: ControlPlane) -> None:
    target = {
        "version": "6.12.4",
        "kernel": "/" + "k" * 254,
        "initrd": "/" + "i" * 254,
        "cmdline": "c" * 1023,
        "checksum": CHECKSUM,
    }
    obj = _set(_set(HOST_REFRESH, "metadata.name", "longest-target"), "spec.target", target)
    crds.kubectl("create", "-f", "-", stdin=json.dumps(obj))
    crds.kubectl("delete", "hostrefresh", "longest-target")
