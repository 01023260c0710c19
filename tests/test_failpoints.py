"""Failpoints: off unless armed, fire once, crash for real or raise the site's error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hostrefresh import failpoints


class StartFailedError(RuntimeError):
    pass


def test_an_unarmed_point_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(failpoints.ENV, str(tmp_path))
    failpoints.hit(failpoints.DESTINATION_START, StartFailedError)
    assert not failpoints.fired(tmp_path, failpoints.DESTINATION_START)


def test_without_the_environment_an_armed_point_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.arm(tmp_path, failpoints.DESTINATION_START, "fail")
    failpoints.hit(failpoints.DESTINATION_START, StartFailedError)
    assert not failpoints.fired(tmp_path, failpoints.DESTINATION_START)


def test_a_failing_point_raises_the_sites_error_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(failpoints.ENV, str(tmp_path))
    failpoints.arm(tmp_path, failpoints.STATE_LOADED, "fail")
    with pytest.raises(StartFailedError, match="failpoint state-loaded"):
        failpoints.hit(failpoints.STATE_LOADED, StartFailedError)
    assert failpoints.fired(tmp_path, failpoints.STATE_LOADED)
    failpoints.hit(failpoints.STATE_LOADED, StartFailedError)  # fired: passes from now on


def test_a_crashing_point_kills_its_process_and_says_it_fired(tmp_path: Path) -> None:
    failpoints.arm(tmp_path, failpoints.ARRIVAL_DECIDED, "crash")
    code = "from hostrefresh import failpoints; failpoints.hit('arrival-decided'); print('survived')"
    env = {**os.environ, failpoints.ENV: str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stdout + run.stderr
    assert "survived" not in run.stdout
    assert failpoints.fired(tmp_path, failpoints.ARRIVAL_DECIDED)


@pytest.mark.parametrize(
    ("name", "action", "field"), [("nowhere", "crash", "failpoint"), ("state-loaded", "hang", "action")]
)
def test_arming_an_unknown_point_or_action_is_refused(tmp_path: Path, name: str, action: str, field: str) -> None:
    with pytest.raises(ValueError, match=f"unknown {field}"):
        failpoints.arm(tmp_path, name, action)
    assert not any(tmp_path.iterdir())


def test_a_point_armed_for_later_passes_acts_at_each_of_them_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(failpoints.ENV, str(tmp_path))
    failpoints.arm(tmp_path, failpoints.DESTINATION_START, "fail", at=(2, 4))
    outcomes = []
    for _ in range(6):
        try:
            failpoints.hit(failpoints.DESTINATION_START, StartFailedError)
            outcomes.append("passed")
        except StartFailedError:
            outcomes.append("failed")
        if len(outcomes) == 3:
            assert not failpoints.fired(tmp_path, failpoints.DESTINATION_START)  # pass 4 is still armed
    assert outcomes == ["passed", "failed", "passed", "failed", "passed", "passed"]
    assert failpoints.fired(tmp_path, failpoints.DESTINATION_START)


def test_passes_are_counted_across_processes(tmp_path: Path) -> None:
    failpoints.arm(tmp_path, failpoints.SEND_FINISHED, "crash", at=(2,))
    code = "from hostrefresh import failpoints; failpoints.hit('send-finished'); print('passed')"
    env = {**os.environ, failpoints.ENV: str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)]
    assert runs[0].returncode == 0 and "passed" in runs[0].stdout
    runs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60))
    assert runs[1].returncode == -signal.SIGKILL, runs[1].stdout + runs[1].stderr
    assert failpoints.fired(tmp_path, failpoints.SEND_FINISHED)


def test_arming_for_no_pass_or_pass_zero_is_refused(tmp_path: Path) -> None:
    for at in [(), (0,), (0, 2)]:
        with pytest.raises(ValueError, match="counted from 1"):
            failpoints.arm(tmp_path, failpoints.STATE_LOADED, "fail", at=at)
    assert not any(tmp_path.iterdir())
