"""`python -m hostrefresh.sim.agent`: the agent's flags plus the simulated ones, checked before anything is
created, and the simulated parts wired in where the real agent would use the kernel's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostrefresh.l0 import sim_create
from hostrefresh.nodeagent.main import MAX_LEASE_SECONDS
from hostrefresh.nodeagent.sysfs import RealSysfsIO
from hostrefresh.sim.agent import build_runtimes, parse_args
from hostrefresh.sim.migrator import SimMigrator
from hostrefresh.sim.sysfs import FakeSysfsIO, build_fake_sysfs


def _bad(tmp_path: Path) -> list[tuple[list[str], str]]:
    sim = [f"--sim-root={tmp_path / 'nodes'}", "--sim-nodes=n1"]
    return [
        ([*sim, "--sim-vms=-1"], "--sim-vms: '-1' must be 0 or more"),
        ([f"--sim-root={tmp_path / 'nodes'}", "--sim-nodes=n1,Node_2"], "--sim-nodes: 'Node_2' is not a node name"),
        ([f"--sim-root={tmp_path / 'nodes'}", "--sim-nodes=n1,n1"], "--sim-nodes names a node twice"),
        ([f"--sim-root={tmp_path / 'nodes'}"], "--sim-nodes names the simulated nodes"),
        (["--node=n1", "--sim-nodes=n1"], "--sim-nodes needs --sim-root"),
        ([*sim, "--l1-id=1"], "--l1-id is for an agent in one host"),
        ([*sim, "--fake-sysfs"], "--fake-sysfs is for one host's fake sysfs"),
        # The agent's own checks still hold.
        ([*sim, "--lease-seconds=91"], "--lease-seconds: '91' must be from 1 to 90"),
        ([*sim, "--identity="], "--identity is empty"),
        (["--node=n1", f"--sysfs-root={tmp_path / 'nosys'}", "--fake-sysfs"], "is not a directory"),
    ]


def test_bad_flags_exit_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in _bad(tmp_path):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
    assert not (tmp_path / "nodes").exists()


def test_simulated_nodes_need_no_node_of_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    args = parse_args(
        [f"--sim-root={tmp_path}", "--sim-nodes=n1,n2.example", f"--lease-seconds={MAX_LEASE_SECONDS}", "--nice=-20"]
    )
    assert args.lease_seconds == 90 and args.sim_nodes == "n1,n2.example"
    with pytest.raises(SystemExit):
        parse_args([f"--sysfs-root={tmp_path}"])


def test_simulated_nodes_are_powered_on_with_simulated_vms(tmp_path: Path) -> None:
    runtimes = build_runtimes(parse_args([f"--sim-root={tmp_path}", "--sim-nodes=n1,n2", "--sim-vms=2"]))
    assert [rt.node for rt in runtimes] == ["n1", "n2"]
    assert all(isinstance(rt.migrator, SimMigrator) and len(rt.migrator.vms) == 2 for rt in runtimes)
    assert all(isinstance(rt.partitioner.io, FakeSysfsIO) for rt in runtimes)
    assert (tmp_path / "n1" / "l0.state").is_file() and (tmp_path / "n2" / "sysfs").is_dir()


@pytest.mark.parametrize(("fake", "io"), [(True, FakeSysfsIO), (False, RealSysfsIO)])
def test_one_node_reads_a_fake_sysfs_only_when_told(tmp_path: Path, fake: bool, io: type) -> None:
    sim_create(tmp_path / "l0.state", cpus=4, memory_bytes=8 << 27, durable=False)
    build_fake_sysfs(tmp_path / "sysfs", cpus=4, memory_blocks=8)
    argv = [
        "--node=n1",
        "--l0-backend=sim",
        f"--l0-sim-state={tmp_path / 'l0.state'}",
        f"--sysfs-root={tmp_path / 'sysfs'}",
        f"--vm-runtime={tmp_path / 'vms'}",
        f"--state-dir={tmp_path / 'agent'}",
    ]
    [rt] = build_runtimes(parse_args([*argv, "--fake-sysfs"] if fake else argv))
    assert rt.node == "n1" and isinstance(rt.partitioner.io, io)
    rt.l0.close()


def test_the_process_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "nodes"
    result = subprocess.run(
        [sys.executable, "-m", "hostrefresh.sim.agent", f"--sim-root={root}", "--sim-nodes=n1", "--lease-seconds=600"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 2
    assert "--lease-seconds: '600' must be from 1 to 90" in result.stderr
    assert not root.exists()
