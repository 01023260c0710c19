"""Every verb of the kubectl plugin against the real control plane, through the real kubectl.

The rollouts are made by hand (objects created, status patched), so each outcome is known: a
finished plan, a halted one with failures, and one still running.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import yaml
from lightkube import AsyncClient

from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.cli.fetch import get_refresh
from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.client import load_config
from hostrefresh.operator import kube as operator_kube
from hostrefresh.operator import objects as operator_objects
from tests.cli.fleet import (
    FORWARD,
    TARGET,
    Kubectl,
    client,
    cond,
    make_plan,
    make_refresh,
    plugin_dir,
    refresh_status,
    set_plan_status,
    set_refresh_status,
    ts,
    unique,
    vms,
)

pytestmark = pytest.mark.integration
SUM = TARGET["checksum"]


@dataclass(frozen=True)
class Fleet:
    kc: Kubectl
    done: str  # plan: every node succeeded
    bad: str  # plan: halted by failures (one rolled back, one failed)
    run: str  # plan: one node nested now
    done_nodes: tuple[str, ...]
    bad_nodes: tuple[str, ...]
    run_node: str
    run_refresh: str


def _agent(node: str, step: str, state: str, nested: float, moved: int = 2, **extra: object) -> dict[str, object]:
    return {"agent": {"step": step, "stepState": state, "nestedSeconds": nested, "vms": vms(node, moved), **extra}}


def _post_event(cp: ControlPlane, name: str, reason: str, message: str) -> None:
    """An Event about a HostRefresh, posted the way the operator posts them."""
    obj = get_refresh(client(cp), name)
    assert obj is not None
    body = operator_objects.event_body(obj, "Warning", reason, message, "default", "test", datetime.now(UTC))

    async def post() -> None:
        ac = AsyncClient(config=load_config(cp.kubeconfig))
        try:
            await operator_kube.post_event(ac, body)
        finally:
            await ac.close()

    asyncio.run(post())


@pytest.fixture(scope="module")
def fleet(crds: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    c = client(crds)
    kc = Kubectl(crds, plugin_dir(tmp_path_factory.mktemp("plugin")))
    done, bad, run = unique("done"), unique("bad"), unique("run")
    done_nodes = tuple(unique("dn") for _ in range(3))
    bad_nodes = tuple(unique("bn") for _ in range(3))
    ok_conds = [
        cond("Ready", "True", "RefreshSucceeded", "node runs 6.12.4-kvm1"),
        cond("Degraded", "False", "AsExpected"),
    ]

    make_plan(c, done, {}, canary=1)
    for i, node in enumerate(done_nodes):
        start = 0.0 if i == 0 else 30.0 + i
        status = refresh_status(start, "Succeeded") | _agent(node, "Verifying", "Done", 9.0) | {"conditions": ok_conds}
        make_refresh(c, f"{done}-{node}", node, done, status)
    set_plan_status(
        c,
        done,
        {
            "nodes": 3,
            "succeeded": 3,
            "wavesStarted": 2,
            "targetVersion": "6.12.4-kvm1",
            "conditions": [
                cond("Ready", "True", "RolloutComplete", "all 3 nodes run 6.12.4-kvm1"),
                cond("Progressing", "False", "RolloutComplete", "nothing left to start"),
            ],
        },
    )

    make_plan(c, bad, {}, canary=1)
    ok, rolled, failed = bad_nodes
    make_refresh(
        c,
        f"{bad}-{ok}",
        ok,
        bad,
        refresh_status(0, "Succeeded") | _agent(ok, "Verifying", "Done", 8.0) | {"conditions": ok_conds},
    )
    rb = refresh_status(30, "RolledBack", steps=[*FORWARD[:5], "RollingBack"]) | _agent(
        rolled, "RollingBack", "Done", 7.0, 0
    )
    rb["conditions"] = [
        cond("Ready", "False", "RolledBack", "rolled back"),
        cond("Degraded", "True", "StepFailed", "step Migrating failed: QMP handover of vm1 timed out"),
    ]
    make_refresh(c, f"{bad}-{rolled}", rolled, bad, rb)
    fl = refresh_status(31, "Failed", steps=FORWARD[:6]) | _agent(failed, "Retiring", "Failed", 12.0)
    fl["conditions"] = [
        cond("Ready", "False", "RefreshFailed", "the refresh failed"),
        cond("Degraded", "True", "DeadlineExceeded", "phase Retiring exceeded its deadline of 300s (301s)"),
    ]
    make_refresh(c, f"{bad}-{failed}", failed, bad, fl)
    set_plan_status(
        c,
        bad,
        {
            "nodes": 3,
            "succeeded": 1,
            "failed": 2,
            "paused": True,
            "pausedReason": "2 refresh(es) failed or rolled back (failureThreshold 1)",
            "conditions": [
                cond("Ready", "False", "RollingOut", "1/3 nodes run 6.12.4-kvm1"),
                cond("Progressing", "False", "FailureThresholdReached", "2 failed"),
                cond("Paused", "True", "FailureThresholdReached", "2 refresh(es) failed or rolled back"),
                cond("Degraded", "True", "RefreshFailed", "2 failed, 0 failing"),
            ],
        },
    )

    make_plan(c, run, {}, canary=1)
    run_node = unique("rn")
    running = refresh_status(1700, "Migrating", steps=FORWARD[:5], step=10)
    since = (datetime.now(UTC) - timedelta(seconds=25)).isoformat().replace("+00:00", "Z")
    running |= _agent(run_node, "Migrating", "Running", 0.0, 1, nestedSince=since)
    running["conditions"] = [cond("Ready", "False", "InProgress", "phase Migrating")]
    make_refresh(c, f"{run}-{run_node}", run_node, run, running)
    set_plan_status(
        c,
        run,
        {
            "nodes": 2,
            "active": 1,
            "pending": 1,
            "wavesStarted": 1,
            "conditions": [
                cond("Ready", "False", "RollingOut", "0/2 nodes run 6.12.4-kvm1"),
                cond("Progressing", "True", "RollingOut", "1 refreshing, 1 pending"),
            ],
        },
    )
    _post_event(crds, f"{bad}-{failed}", "DeadlineExceeded", "phase Retiring exceeded its deadline of 300s")
    return Fleet(kc, done, bad, run, done_nodes, bad_nodes, run_node, f"{run}-{run_node}")


# -- get -------------------------------------------------------------------------------------------


def test_get_lists_plans_and_refreshes(fleet: Fleet) -> None:
    out = fleet.kc.run("get")
    assert out.returncode == 0, out.stderr
    for name in (fleet.done, fleet.bad, fleet.run, *fleet.done_nodes, fleet.run_node):
        assert name in out.stdout
    assert "Halted" in out.stdout and "Succeeded" in out.stdout


def test_get_lists_what_a_label_selector_selects(fleet: Fleet) -> None:
    names = fleet.kc.run("get", "-l", f"{PLAN_LABEL}={fleet.done}", "-o", "name").stdout.split()
    assert names and all(n.startswith(f"hostrefresh.hostrefresh.io/{fleet.done}-") for n in names), names
    others = fleet.kc.run("get", "-l", f"{PLAN_LABEL} notin ({fleet.done}),{PLAN_LABEL}", "-o", "name").stdout.split()
    assert others and not any(f"/{fleet.done}-" in n for n in others), others
    bad = fleet.kc.run("get", "-l", "pool in gpu")
    assert bad.returncode == 2 and "'pool in gpu' is not a label requirement" in bad.stderr, bad.stderr
    both = fleet.kc.run("get", fleet.done, "-l", "a=b")
    assert both.returncode == 2 and "do not go together" in both.stderr


def test_get_json_yaml_name_wide(fleet: Fleet) -> None:
    listed = json.loads(fleet.kc.run("get", fleet.bad, "-o", "json").stdout)
    assert listed["kind"] == "List"
    kinds = sorted(i["kind"] for i in listed["items"])
    assert kinds == ["HostRefresh", "HostRefresh", "HostRefresh", "RefreshPlan"]
    as_yaml = yaml.safe_load(fleet.kc.run("get", fleet.done, "-o", "yaml").stdout)
    assert len(as_yaml["items"]) == 4
    names = fleet.kc.run("get", fleet.done, "-o", "name").stdout.split()
    assert f"refreshplan.hostrefresh.io/{fleet.done}" in names
    assert f"hostrefresh.hostrefresh.io/{fleet.done}-{fleet.done_nodes[0]}" in names
    wide = fleet.kc.run("get", fleet.bad, "-o", "wide").stdout
    assert "QMP handover of vm1 timed out" in wide and "WAVES" in wide
    piped = fleet.kc.run("get", fleet.bad, "-o", "wide", env={"COLUMNS": ""}).stdout  # a pipe, no width known
    assert "…" not in piped and f"{fleet.bad}-{fleet.bad_nodes[1]}" in piped and "6.12.4-kvm1" in piped


# -- status ----------------------------------------------------------------------------------------


def test_status_exit_codes(fleet: Fleet) -> None:
    done = fleet.kc.run("status", fleet.done)
    assert done.returncode == 0, done.stderr
    assert "Succeeded" in done.stdout and "3/3" in done.stdout
    bad = fleet.kc.run("status", fleet.bad)
    assert bad.returncode == 1
    assert "Halted" in bad.stdout and "FailureThresholdReached" in bad.stdout
    run = fleet.kc.run("status", fleet.run)
    assert run.returncode == 3 and "Progressing" in run.stdout
    node = fleet.kc.run("status", fleet.bad_nodes[1])
    assert node.returncode == 1 and "RolledBack" in node.stdout and "StepFailed" in node.stdout


def test_status_json(fleet: Fleet) -> None:
    data = json.loads(fleet.kc.run("status", fleet.done, "-o", "json").stdout)
    assert data["kind"] == "RefreshPlan" and data["outcome"] == "Succeeded"
    rows = data["refreshes"]
    assert rows[0]["node"] == fleet.done_nodes[0]
    assert rows[0]["canary"] is True and rows[0]["wave"] == 1
    assert {r["wave"] for r in rows[1:]} == {2}
    one = json.loads(fleet.kc.run("status", fleet.run_node, "-o", "json").stdout)
    assert one["kind"] == "HostRefresh" and one["outcome"] == "Progressing"
    assert one["nestedWindow"]["ongoing"] is True and one["nestedWindow"]["seconds"] >= 25


def test_status_timeout_runs_out(fleet: Fleet) -> None:
    started = time.monotonic()
    out = fleet.kc.run("status", fleet.run, "--timeout", "2s", "--interval", "0.5")
    assert out.returncode == 3
    assert time.monotonic() - started >= 2
    assert "timed out after 2s" in out.stderr


def test_status_timeout_waits_for_success_and_failure(crds: ControlPlane, fleet: Fleet) -> None:
    c = client(crds)
    for end, code in (("Succeeded", 0), ("Failed", 1)):
        name = unique("wait")
        node = unique("wn")
        make_refresh(c, name, node, None, refresh_status(0, "Migrating", steps=FORWARD[:5]))

        def finish(name: str = name, end: str = end) -> None:
            time.sleep(1.5)
            set_refresh_status(c, name, {"phase": end, "completedAt": ts(60)})

        thread = threading.Thread(target=finish)
        thread.start()
        out = fleet.kc.run("status", node, "--timeout", "30s", "--interval", "0.3")
        thread.join()
        assert out.returncode == code, (end, out.stdout, out.stderr)
        assert end in out.stdout


# -- watch -----------------------------------------------------------------------------------------


def test_watch_ends_with_the_rollout(fleet: Fleet) -> None:
    done = fleet.kc.run("watch", fleet.done)
    assert done.returncode == 0, done.stderr
    assert "plan: Succeeded 3/3 done" in done.stdout
    assert all(n in done.stdout for n in fleet.done_nodes)
    bad = fleet.kc.run("watch", fleet.bad, "-o", "json")
    assert bad.returncode == 1
    first = json.loads(bad.stdout.splitlines()[0])
    assert first["outcome"] == "Halted" and len(first["refreshes"]) == 3
    as_yaml = fleet.kc.run("watch", fleet.bad, "-o", "yaml")
    assert as_yaml.returncode == 1 and as_yaml.stdout.startswith("---\n"), as_yaml.stdout[:200]
    docs = [d for d in yaml.safe_load_all(as_yaml.stdout) if d is not None]
    assert docs and docs[0]["outcome"] == "Halted" and len(docs[0]["refreshes"]) == 3


def test_watch_on_a_terminal_draws_the_table(fleet: Fleet) -> None:
    code, screen = fleet.kc.run_tty("watch", fleet.done)
    assert code == 0, screen
    assert f"RefreshPlan {fleet.done}" in screen and "Succeeded" in screen
    assert all(n in screen for n in fleet.done_nodes)
    code, screen = fleet.kc.run_tty("watch", fleet.run, "--timeout", "1.5s", "--interval", "0.5")
    assert code == 3 and fleet.run_node in screen and "Migrating" in screen


def test_watch_follows_changes_until_timeout(fleet: Fleet) -> None:
    out = fleet.kc.run("watch", fleet.run, "--timeout", "1.5s", "--interval", "0.5")
    assert out.returncode == 3
    assert f"{fleet.run_node}: Migrating" in out.stdout


# -- describe --------------------------------------------------------------------------------------


def test_describe_node(fleet: Fleet) -> None:
    node = fleet.bad_nodes[2]
    out = fleet.kc.run("describe", node)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for phase in ("Preflight", "Migrating", "Retiring", "Failed"):
        assert phase in text
    assert "3.0s" in text  # each phase took 3 s
    assert "Nested window:" in text and "12.0s" in text
    assert f"{node}-vm0" in text and "ZeroCopy" in text
    assert "Stopped by: Degraded=True DeadlineExceeded" in text
    assert "Events" in text and "exceeded its deadline of 300s" in text


def test_describe_json(fleet: Fleet) -> None:
    data = json.loads(fleet.kc.run("describe", fleet.bad_nodes[2], "-o", "json").stdout)
    phases = [p["phase"] for p in data["phases"]]
    assert phases == [*FORWARD[:6], "Failed"]
    assert [p["seconds"] for p in data["phases"][:6]] == [3.0] * 6
    assert data["nestedWindow"]["seconds"] == 12.0 and data["nestedWindow"]["ongoing"] is False
    assert [v["name"] for v in data["vms"]] == [f"{fleet.bad_nodes[2]}-vm0", f"{fleet.bad_nodes[2]}-vm1"]
    assert data["stoppingCondition"]["reason"] == "DeadlineExceeded"
    assert data["events"][0]["reason"] == "DeadlineExceeded"


# -- timeline --------------------------------------------------------------------------------------


def test_timeline_png_of_a_finished_plan(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "done.png"
    out = fleet.kc.run("timeline", fleet.done, "-o", str(path))
    assert out.returncode == 0, out.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 800
    assert "3/3 nodes refreshed" in out.stdout and "2 wave(s)" in out.stdout and str(path) in out.stdout


def test_timeline_svg_and_html_of_a_failed_plan(fleet: Fleet, tmp_path: Path) -> None:
    svg = tmp_path / "bad.svg"
    out = fleet.kc.run("timeline", fleet.bad, "-o", str(svg))
    assert out.returncode == 0, out.stderr
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = svg.read_text()
    assert "RolledBack" in text and "nested window" in text and "(canary)" in text
    assert "failed:" in out.stdout and "Halted" in out.stdout
    page = tmp_path / "bad.html"
    assert fleet.kc.run("timeline", fleet.bad, "-o", str(page)).returncode == 0
    assert page.read_text().startswith("<!DOCTYPE html>") and "<svg" in page.read_text()
    wrong = fleet.kc.run("timeline", fleet.bad, "-o", str(tmp_path / "bad.gif"))
    assert wrong.returncode == 2 and ".png, .svg or .html" in wrong.stderr


# -- changes ---------------------------------------------------------------------------------------


def test_start_pause_resume_abort(crds: ControlPlane, fleet: Fleet) -> None:
    name, node = unique("cli-hr"), unique("cli-node")
    args: tuple[str, ...] = (
        "start",
        node,
        "--version",
        "7.1",
        "--kernel",
        "/var/lib/hostrefresh/images/vmlinuz-7.1",
        "--checksum",
        SUM,
    )
    args += ("--memory", "2Gi", "--name", name)
    out = fleet.kc.run(*args)
    assert out.returncode == 0, out.stderr
    assert f"hostrefresh {name} created for node {node}" in out.stdout
    assert fleet.kc.run(*args).returncode == 1  # exists already: the API server refuses
    assert fleet.kc.run("pause", "hostrefresh", name).returncode == 0
    assert crds.kubectl("get", "hrf", name, "-o", "jsonpath={.spec.paused}").stdout == "true"
    assert fleet.kc.run("resume", f"hrf/{name}").returncode == 0
    assert crds.kubectl("get", "hrf", name, "-o", "jsonpath={.spec.paused}").stdout == "false"
    assert fleet.kc.run("abort", node).returncode == 0  # by node name
    assert crds.kubectl("get", "hrf", name, "-o", "jsonpath={.spec.abort}").stdout == "true"
    ended = fleet.kc.run("abort", fleet.done_nodes[0])
    assert ended.returncode == 2 and "nothing to abort" in ended.stderr
    # Without --name: the node and the version, made a valid name whatever the version holds.
    other = unique("cli-node")
    plus = ("start", other, "--version", "6.12.4+kvm1", "--kernel", "/var/lib/hostrefresh/images/vmlinuz-6.12.4")
    out = fleet.kc.run(*plus, "--checksum", SUM, "--memory", "2Gi")
    assert out.returncode == 0, out.stderr
    assert f"hostrefresh {other}-6-12-4-kvm1 created for node {other}" in out.stdout


def test_pause_resume_abort_a_plan(crds: ControlPlane, fleet: Fleet) -> None:
    out = fleet.kc.run("pause", "plan", fleet.run)
    assert out.returncode == 0 and "no new node starts" in out.stdout
    assert crds.kubectl("get", "rplan", fleet.run, "-o", "jsonpath={.spec.paused}").stdout == "true"
    assert fleet.kc.run("resume", fleet.run).returncode == 0
    assert crds.kubectl("get", "rplan", fleet.run, "-o", "jsonpath={.spec.paused}").stdout == "false"
    aborted = fleet.kc.run("abort", "refreshplan", fleet.run)
    assert aborted.returncode == 0 and fleet.run_refresh in aborted.stdout
    assert crds.kubectl("get", "hrf", fleet.run_refresh, "-o", "jsonpath={.spec.abort}").stdout == "true"
    assert crds.kubectl("get", "rplan", fleet.run, "-o", "jsonpath={.spec.paused}").stdout == "true"


def test_retry(crds: ControlPlane, fleet: Fleet) -> None:
    c = client(crds)
    name, node = unique("lone"), unique("ln")
    make_refresh(c, name, node, None, refresh_status(0, "RolledBack", steps=["Preflight", "RollingBack"]))
    out = fleet.kc.run("retry", node)
    assert out.returncode == 0, out.stderr
    assert crds.kubectl("get", "hrf", f"{name}-retry-1", "-o", "jsonpath={.spec.nodeName}").stdout == node
    retry_of = crds.kubectl("get", "hrf", f"{name}-retry-1", "-o", "jsonpath={.metadata.annotations}").stdout
    assert json.loads(retry_of) == {"hostrefresh.io/retry-of": name}
    assert crds.kubectl("get", "hrf", name, "-o", "jsonpath={.status.phase}").stdout == "RolledBack"  # the record
    assert fleet.kc.run("retry", fleet.done_nodes[1]).returncode == 2  # succeeded: nothing to retry
    # A plan's failed refreshes are kept as the record, marked for the plan to start their nodes again.
    plan = unique("retry")
    make_plan(c, plan, {})
    make_refresh(c, f"{plan}-a", unique("ra"), plan, refresh_status(0, "Failed", steps=FORWARD[:6]))
    make_refresh(c, f"{plan}-b", unique("rb"), plan, refresh_status(0, "Succeeded"))
    out = fleet.kc.run("retry", "plan", plan)
    assert out.returncode == 0, out.stderr
    kept = json.loads(crds.kubectl("get", "hrf", f"{plan}-a", "-o", "json").stdout)
    assert kept["status"]["phase"] == "Failed" and "hostrefresh.io/retry" in kept["metadata"]["annotations"]
    assert crds.kubectl("get", "hrf", f"{plan}-b", "-o", "name").stdout.strip() != ""
    again = fleet.kc.run("retry", "plan", plan)
    assert again.returncode == 2 and "no failed refresh" in again.stderr  # asked once is enough


def test_bad_input_names_the_field_and_changes_nothing(crds: ControlPlane, fleet: Fleet) -> None:
    name = unique("cli-bad")
    out = fleet.kc.run(
        "start", "cli-bad", "--version", "1", "--kernel", "/k", "--checksum", SUM, "--cpus", "0", "--name", name
    )
    assert out.returncode == 2
    assert "invalid refresh" in out.stderr and "cpus" in out.stderr
    assert crds.kubectl("get", "hrf", name, "--ignore-not-found", "-o", "name").stdout == ""


def test_start_a_vmm_refresh(crds: ControlPlane, fleet: Fleet) -> None:
    name, node = unique("cli-vmm"), unique("cli-vmm-node")
    binary = "/var/lib/hostrefresh/images/qemu-7.2u18/bin/qemu-system-x86_64"
    missing = fleet.kc.run("start", node, "--version", "q2", "--scope", "vmm", "--name", name)
    assert missing.returncode == 2 and "a vmm refresh needs --qemu and --qemu-checksum" in missing.stderr
    no_kernel = fleet.kc.run("start", node, "--version", "q2", "--name", name)
    assert no_kernel.returncode == 2 and "a host refresh needs --kernel and --checksum" in no_kernel.stderr
    assert "--scope vmm with --qemu" in no_kernel.stderr
    assert crds.kubectl("get", "hrf", name, "--ignore-not-found", "-o", "name").stdout == ""
    out = fleet.kc.run(
        "start", node, "--version", "q2", "--scope", "vmm", "--qemu", binary, "--qemu-checksum", SUM, "--name", name
    )
    assert out.returncode == 0, out.stderr
    spec = json.loads(crds.kubectl("get", "hrf", name, "-o", "jsonpath={.spec}").stdout)
    assert (spec["scope"], spec["target"]["qemu"]) == ("VMM", {"binary": binary, "checksum": SUM})
    listed = fleet.kc.run("get")
    assert any(name in line and " VMM " in line for line in listed.stdout.splitlines()), listed.stdout


# -- errors, kubeconfig, version, completion --------------------------------------------------------


def test_unknown_names_say_what_to_do(fleet: Fleet) -> None:
    for args in (("status", "no-such-thing"), ("describe", "no-such-node"), ("pause", "plan", "no-such-plan")):
        out = fleet.kc.run(*args)
        assert out.returncode == 4, args
        assert "no-such" in out.stderr and "kubectl hostrefresh get" in out.stderr


def test_kubeconfig_context_and_unreachable_cluster(crds: ControlPlane, fleet: Fleet, tmp_path: Path) -> None:
    conf = yaml.safe_load(crds.kubeconfig.read_text())
    # $KUBECONFIG of two files, merged: clusters and users in one, the context in the other.
    first = tmp_path / "a.yaml"
    first.write_text(yaml.safe_dump({**conf, "contexts": [], "current-context": ""}))
    ctx = {
        "name": "merged",
        "context": {
            "cluster": conf["contexts"][0]["context"]["cluster"],
            "user": conf["contexts"][0]["context"]["user"],
        },
    }
    second = tmp_path / "b.yaml"
    second.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": [ctx], "current-context": "merged"})
    )
    merged = fleet.kc.run("get", fleet.done, "-o", "name", env={"KUBECONFIG": f"{first}:{second}"})
    assert merged.returncode == 0, merged.stderr
    assert fleet.done in merged.stdout
    explicit = fleet.kc.run(
        "--kubeconfig", str(crds.kubeconfig), "--context", conf["contexts"][0]["name"], "status", fleet.done
    )
    assert explicit.returncode == 0, explicit.stderr
    unknown = fleet.kc.run("get", "--context", "nope")
    assert (
        unknown.returncode == 5
        and "context 'nope'" in unknown.stderr
        and "kubectl config get-contexts" in unknown.stderr
    )
    missing = fleet.kc.run("get", "--kubeconfig", str(tmp_path / "missing"))
    assert missing.returncode == 5
    dead = tmp_path / "dead.yaml"
    conf["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    dead.write_text(yaml.safe_dump(conf))
    down = fleet.kc.run("get", env={"KUBECONFIG": str(dead)})
    assert down.returncode == 5 and "cannot reach the API server" in down.stderr


def test_version(fleet: Fleet) -> None:
    out = fleet.kc.run("version")
    assert out.returncode == 0 and "Client Version: v0.1.0" in out.stdout and "v1alpha1" in out.stdout
    data = json.loads(fleet.kc.run("version", "-o", "json").stdout)
    assert data["serverAPI"]["hostrefreshes.hostrefresh.io"] == ["v1alpha1"]
    assert json.loads(fleet.kc.run("version", "--client", "-o", "json").stdout).keys() == {"clientVersion"}


def test_completion(fleet: Fleet) -> None:
    for shell in ("bash", "zsh", "fish"):
        out = fleet.kc.run("completion", shell)
        assert out.returncode == 0 and "kubectl-hostrefresh __complete" in out.stdout
    verbs = fleet.kc.run("__complete", "").stdout.splitlines()
    assert {"get", "status", "watch", "describe", "timeline", "retry", "version"} <= set(verbs) and verbs[-1] == ":4"
    names = fleet.kc.run("__complete", "describe", fleet.done_nodes[0][:4]).stdout.splitlines()
    assert fleet.done_nodes[0] in names
    # Through kubectl's own completion of plugins, as a shell asks it.
    env = {"PATH": f"{fleet.kc.path_dir}:{os.environ.get('PATH', '')}", "KUBECONFIG": str(fleet.kc.cp.kubeconfig)}
    via_kubectl = subprocess.run(
        [str(fleet.kc.cp.tools.kubectl), "__complete", "hostrefresh", "desc"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "describe" in via_kubectl.stdout.splitlines(), via_kubectl.stdout + via_kubectl.stderr
    formats = fleet.kc.run("__complete", "get", "-o", "").stdout.splitlines()
    assert formats[:4] == ["json", "yaml", "wide", "name"]
