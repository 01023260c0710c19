"""The operator refuses bad flags and environment at start: exit 2, the flag named, nothing done."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hostrefresh.operator.main import parse_args

# (flags, a fragment of the error: the flag and what is wanted)
BAD: list[tuple[list[str], str]] = [
    (["--lease-seconds=0"], "--lease-seconds: '0' must be at least 1 seconds"),
    (["--lease-seconds=-5"], "--lease-seconds"),
    (["--lease-seconds=nan"], "--lease-seconds: 'nan' is not a finite number"),
    (["--plan-interval=0"], "--plan-interval: '0' must be more than 0 seconds"),
    (["--plan-interval=soon"], "--plan-interval: 'soon' is not a number"),
    (["--max-starts-per-second=-1"], "--max-starts-per-second: '-1' must be 0 or more"),
    (["--start-backlog=-1"], "--start-backlog: '-1' must be 0 or more"),
    (["--metrics-port=70000"], "--metrics-port: '70000' must be a port from 1 to 65535"),
    (["--health-port=-1"], "--health-port"),
    (["--metrics-port=8080", "--health-port=8080"], "--metrics-port and --health-port are both 8080"),
    (["--namespace=Hostrefresh_System"], "--namespace: 'Hostrefresh_System' is not a namespace name"),
    (["--namespace=" + "n" * 64], "--namespace"),
    (["--events-namespace=bad.namespace"], "--events-namespace"),
    (["--marker-annotation=not a key"], "--marker-annotation: 'not a key' is not an annotation key"),
    (["--marker-annotation=Example.COM/x"], "--marker-annotation"),
    (["--identity= "], "--identity"),
    (["--kubeconfig=/nonexistent/kubeconfig"], "--kubeconfig /nonexistent/kubeconfig: no such file"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_flag_exits_naming_it(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_namespace_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "Not/A/Namespace")
    with pytest.raises(SystemExit):
        parse_args([])
    assert "--namespace: 'Not/A/Namespace' is not a namespace name" in capsys.readouterr().err


def test_good_flags_pass(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    config = parse_args(
        [
            f"--kubeconfig={kubeconfig}",
            "--namespace=ops",
            "--lease-seconds=1",
            "--plan-interval=0.5",
            "--start-backlog=0",
            "--metrics-port=9090",
            "--health-port=8081",
            "--marker-annotation=example.com/refreshing",
            "--log-format=plain",
        ]
    )
    assert (config.namespace, config.lease_seconds, config.metrics_port) == ("ops", 1.0, 9090)
    assert config.marker_annotations == ("example.com/refreshing",)


def test_the_process_exits_2_before_it_does_anything() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hostrefresh.operator.main", "--plan-interval=-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--plan-interval: '-1' must be more than 0 seconds" in result.stderr
