"""The node agent refuses bad flags and environment at start: exit 2, the flag named, nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostrefresh.nodeagent.main import MAX_LEASE_SECONDS, parse_args


def _bad(tmp_path: Path) -> list[tuple[list[str], str]]:
    node = ["--node=n1", f"--sysfs-root={tmp_path}"]
    state = tmp_path / "l0.state"
    return [
        # The heartbeat: renewed every third of the Lease; two renewals must fit the default silence limit.
        ([*node, "--lease-seconds=0"], "--lease-seconds: '0' must be from 1 to 90"),
        ([*node, "--lease-seconds=91"], "--lease-seconds: '91' must be from 1 to 90"),
        ([*node, "--lease-seconds=2.5"], "--lease-seconds: '2.5' is not a whole number"),
        ([*node, "--retry-seconds=0"], "--retry-seconds: '0' must be more than 0 seconds"),
        ([*node, "--retry-seconds=inf"], "--retry-seconds: 'inf' is not a finite number"),
        ([*node, "--report-running-after=-1"], "--report-running-after: '-1' must be 0 or more"),
        ([*node, "--metrics-port=65536"], "--metrics-port: '65536' must be a port"),
        ([*node, "--metrics-port=9091", "--health-port=9091"], "--metrics-port and --health-port are both 9091"),
        ([*node, "--namespace=UPPER"], "--namespace: 'UPPER' is not a namespace name"),
        ([*node, "--identity="], "--identity is empty"),
        ([*node, "--vm-cgroup=../escape"], "--vm-cgroup must be one cgroup name"),
        ([*node, "--vm-cgroup=a/b"], "--vm-cgroup must be one cgroup name"),
        # The simulated parts are not the agent's: python -m hostrefresh.sim.agent adds them.
        ([*node, f"--sim-root={tmp_path / 'nodes'}", "--sim-nodes=n1"], "unrecognized arguments: --sim-root"),
        ([*node, "--fake-sysfs"], "unrecognized arguments: --fake-sysfs"),
        (["--node=-bad-"], "--node: '-bad-' is not a node name"),
        (["--node=" + "a" * 254], "--node"),
        (["--node=n1", "--l1-id=0"], "--l1-id: '0' must be 1 or more"),
        (["--node=n1", "--l1-id=two"], "--l1-id: 'two' is not a whole number"),
        (["--node=n1", "--nice=20"], "--nice: '20' must be from -20 to 19"),
        (["--node=n1", f"--sysfs-root={tmp_path / 'nosys'}"], f"--sysfs-root {tmp_path / 'nosys'} is not a directory"),
        (["--node=n1", f"--l0-sim-state={state}", f"--sysfs-root={tmp_path}"], "--l0-sim-state is the simulated"),
        (
            ["--node=n1", "--l0-backend=sim", f"--l0-sim-state={state}", f"--sysfs-root={tmp_path}"],
            f"--l0-sim-state {state}: no such file",
        ),
        (
            ["--node=n1", "--l1-id=1", f"--sysfs-root={tmp_path}", f"--channel-dir={tmp_path / 'nochan'}"],
            f"--channel-dir {tmp_path / 'nochan'} is not a directory",
        ),
        ([*node, f"--kubeconfig={tmp_path / 'missing'}"], f"--kubeconfig {tmp_path / 'missing'}: no such file"),
    ]


def test_bad_flags_exit_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in _bad(tmp_path):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
    assert not (tmp_path / "nodes").exists() and not (tmp_path / "agent").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NODE_NAME": "Node_A"}, "--node: 'Node_A' is not a node name"),
        ({"NODE_NAME": "n1", "HOSTREFRESH_L1_ID": "x"}, "--l1-id: 'x' is not a whole number"),
        ({"NODE_NAME": "n1", "POD_NAMESPACE": "a_b"}, "--namespace: 'a_b' is not a namespace name"),
        ({"NODE_NAME": ""}, "--node (or $NODE_NAME) is required"),
    ],
)
def test_bad_environment_exits_naming_the_flag(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("NODE_NAME", "HOSTREFRESH_L1_ID", "POD_NAMESPACE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit):
        parse_args([])
    assert message in capsys.readouterr().err


def test_good_flags_pass(tmp_path: Path) -> None:
    args = parse_args(["--node=n1", f"--sysfs-root={tmp_path}", f"--lease-seconds={MAX_LEASE_SECONDS}", "--nice=-20"])
    assert args.lease_seconds == 90 and args.node == "n1"
    long_node = ("n" * 62 + ".") * 4 + "n"  # 253 characters: a legal node name
    assert parse_args([f"--node={long_node}", f"--sysfs-root={tmp_path}"]).node == long_node


def test_the_process_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "agent"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hostrefresh.nodeagent.main",
            "--node=n1",
            f"--sysfs-root={tmp_path}",
            f"--state-dir={state}",
            "--lease-seconds=600",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 2
    assert "--lease-seconds: '600' must be from 1 to 90" in result.stderr
    assert not state.exists()
