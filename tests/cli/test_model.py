"""The plugin's pure parts: outcome rules, phases and nested window, waves, durations, kubeconfig
merging, and API errors turned into exit codes and hints (no control plane)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
import yaml
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig

from hostrefresh.cli import config, fetch
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.main import parse_duration
from hostrefresh.cli.model import Outcome, duration, plan_outcome, refresh_outcome, refresh_view, rollout
from hostrefresh.cli.output import dump
from tests.cli.fleet import FORWARD, T0, cond, refresh_status

NOW = T0 + timedelta(seconds=100)


def hr(name: str, status: dict[str, object], **spec: object) -> dict[str, object]:
    meta = {"name": name, "creationTimestamp": (T0 - timedelta(seconds=5)).isoformat()}
    return {"metadata": meta, "spec": {"nodeName": name, "target": {"version": "v2"}, **spec}, "status": status}


def test_refresh_outcomes() -> None:
    assert refresh_outcome(hr("a", refresh_status(0, "Succeeded"))) == Outcome.SUCCEEDED
    assert refresh_outcome(hr("a", refresh_status(0, "RolledBack"))) == Outcome.FAILED
    assert refresh_outcome(hr("a", refresh_status(0, "Failed"))) == Outcome.FAILED
    assert refresh_outcome(hr("a", refresh_status(0, "Migrating", steps=FORWARD[:5]))) == Outcome.PROGRESSING
    assert refresh_outcome(hr("a", refresh_status(0, "Migrating", steps=FORWARD[:5]), paused=True)) == Outcome.PAUSED
    assert refresh_outcome(hr("a", {})) == Outcome.PENDING


def plan(status: dict[str, object], generation: int = 1, **spec: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "generation": generation}, "spec": {"canary": 1, **spec}, "status": status}


def test_plan_outcomes() -> None:
    ready = {"observedGeneration": 1, "conditions": [cond("Ready", "True", "RolloutComplete")]}
    assert plan_outcome(plan(ready)) == Outcome.SUCCEEDED
    assert plan_outcome(plan(ready, generation=2)) == Outcome.PROGRESSING  # not yet observed: not done
    halted = {
        "observedGeneration": 1,
        "paused": True,
        "conditions": [cond("Paused", "True", "FailureThresholdReached")],
    }
    assert plan_outcome(plan(halted)) == Outcome.HALTED
    ended = {"observedGeneration": 1, "conditions": [cond("Progressing", "False", "RefreshFailed")]}
    assert plan_outcome(plan(ended)) == Outcome.FAILED
    assert plan_outcome(plan({"observedGeneration": 1}, paused=True)) == Outcome.PAUSED
    assert plan_outcome(plan({})) == Outcome.PENDING
    assert all(o.done for o in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.HALTED))
    assert not any(o.done for o in (Outcome.PENDING, Outcome.PROGRESSING, Outcome.PAUSED))


def test_phases_durations_and_nested_window() -> None:
    status = refresh_status(10, "Succeeded", step=2.0, nested=5.0)
    view = refresh_view(hr("a", status), NOW)
    assert [s.phase for s in view.segments] == ["Pending", *FORWARD, "Succeeded"]
    assert view.segments[0].seconds == 15.0  # created 5 s before T0, started at 10 s
    assert [s.seconds for s in view.segments[1:-1]] == [2.0] * 8
    assert view.segments[-1].seconds == 0.0
    assert view.window is not None and not view.window.ongoing
    assert view.window.seconds == 5.0
    assert view.window.end == T0 + timedelta(seconds=10 + 7 * 2.0)  # ends when Verifying began
    running = refresh_status(0, "Migrating", steps=FORWARD[:5])
    running["agent"] = {"nestedSince": (NOW - timedelta(seconds=7)).isoformat()}
    live = refresh_view(hr("b", running), NOW)
    assert live.window is not None and live.window.ongoing and live.window.seconds == 7.0
    assert live.segments[-1].end == NOW


def test_waves_and_canary() -> None:
    children = [
        hr("c1", refresh_status(0, "Succeeded")),  # canary: alone, 24 s
        hr("c2", refresh_status(30, "Succeeded")),  # wave 2 starts from rest
        hr("c3", refresh_status(31, "Succeeded")),
        hr("c4", refresh_status(40, "Succeeded")),  # refills a slot: still wave 2
        hr("c5", refresh_status(200, "Succeeded")),  # from rest again: wave 3
    ]
    rows = rollout(plan({}), children, NOW + timedelta(seconds=500))
    assert [(r.view.name, r.wave, r.canary) for r in rows] == [
        ("c1", 1, True),
        ("c2", 2, False),
        ("c3", 2, False),
        ("c4", 2, False),
        ("c5", 3, False),
    ]


def test_durations() -> None:
    assert [duration(x) for x in (0.25, 12.34, 245, 7380, None)] == ["250ms", "12.3s", "4m05s", "2h03m", "-"]
    assert [parse_duration(x) for x in ("90", "30s", "5m", "1h30m", "500ms")] == [90, 30, 300, 5400, 0.5]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("5 minutes")


def _kubeconfig(server: str, context: str | None, cluster: bool = True) -> dict[str, object]:
    conf: dict[str, object] = {"apiVersion": "v1", "kind": "Config", "current-context": context or ""}
    conf["clusters"] = (
        [{"name": "c", "cluster": {"server": server, "certificate-authority": "ca.crt"}}] if cluster else []
    )
    conf["users"] = [{"name": "u", "user": {"token": "t"}}]
    conf["contexts"] = [{"name": context, "context": {"cluster": "c", "user": "u"}}] if context else []
    return conf


def test_kubeconfig_merge_first_wins_and_paths_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "one").mkdir()
    a = tmp_path / "one" / "a.yaml"
    a.write_text(yaml.safe_dump(_kubeconfig("https://a:6443", None)))
    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump(_kubeconfig("https://b:6443", "ctx")))
    monkeypatch.setenv("KUBECONFIG", f"{a}:{tmp_path / 'absent.yaml'}:{b}")
    files = config.kubeconfig_files(None)
    assert files == [a, b]
    merged = config.merge(files)
    assert merged["current-context"] == "ctx"
    assert [c["cluster"]["server"] for c in merged["clusters"]] == ["https://a:6443"]
    assert merged["clusters"][0]["cluster"]["certificate-authority"] == str(tmp_path / "one" / "ca.crt")
    with pytest.raises(CliError) as err:
        config.load(None, "other")
    assert err.value.code == Exit.NO_CLUSTER and "ctx" in err.value.hint
    monkeypatch.setenv("KUBECONFIG", str(a))
    with pytest.raises(CliError) as err:
        config.load(None, None)
    assert "no current context" in err.value.message


def _client(status: int, body: dict[str, object]) -> Client:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body)

    conf = KubeConfig.from_dict(
        _kubeconfig("https://api:6443", "ctx", cluster=True)
        | {"clusters": [{"name": "c", "cluster": {"server": "https://api:6443"}}]}
    )
    return Client(config=conf, transport=httpx2.MockTransport(answer))


def test_api_errors_become_exit_codes() -> None:
    gone = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "code": 404,
        "message": "the server could not find the requested resource",
    }
    with pytest.raises(CliError) as err:
        fetch.list_plans(_client(404, gone))
    assert err.value.code == Exit.NO_CRDS and "kubectl apply -f crds/" in err.value.hint
    missing = gone | {
        "details": {"name": "p", "group": "hostrefresh.io", "kind": "refreshplans"},
        "message": 'refreshplans "p" not found',
    }
    assert fetch.get_plan(_client(404, missing), "p") is None
    forbidden = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": "no",
    }
    with pytest.raises(CliError) as err:
        fetch.list_refreshes(_client(403, forbidden))
    assert err.value.code == Exit.FAILED and "RBAC" in err.value.hint


def test_times_parse_as_the_api_server_writes_them() -> None:
    view = refresh_view(hr("a", {"startedAt": "2026-01-02T03:04:05Z"}), NOW)
    assert view.started == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_refresh_without_status_prints_as_yaml_and_json() -> None:
    """A refresh the operator has not visited yet: its phase is Pending, as plain text in every format."""
    obj = {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "metadata": {"name": "fresh", "creationTimestamp": "2026-11-30T12:00:00Z"},
        "spec": {"nodeName": "n1", "target": {"version": "2.0"}},
    }
    view = refresh_view(obj).to_json()
    assert view["phase"] == "Pending"
    assert "phase: Pending" in dump(view, "yaml")
    assert '"phase": "Pending"' in dump(view, "json")
