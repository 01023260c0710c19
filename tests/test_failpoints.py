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
