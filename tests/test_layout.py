"""The repository layout never shadows the standard library and installs its entry points."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_stdlib_modules_are_not_shadowed_from_the_repo_root() -> None:
    code = (
        "import operator, collections, asyncio, sys, sysconfig;"
        "stdlib = sysconfig.get_paths()['stdlib'];"
        "assert operator.__file__.startswith(stdlib), operator.__file__;"
        "assert collections.__file__.startswith(stdlib), collections.__file__;"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_no_top_level_directory_can_shadow_a_stdlib_module() -> None:
    """`operator/`, `test/` ... at the root would be imported instead of the standard library's."""
    offenders = [
        p.name
        for p in REPO_ROOT.iterdir()
        if p.is_dir() and p.name in sys.stdlib_module_names and (p / "__init__.py").exists()
    ]
    assert offenders == [], f"top-level packages would shadow the standard library: {offenders}"
    packages = sorted(p.name for p in REPO_ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert packages == ["tests"], f"only tests/ is a package at the root (src layout), found {packages}"


def test_pytest_collects_from_the_repo_root() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/test_layout.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", ["hostrefresh-operator", "hostrefresh-agent", "kubectl-hostrefresh"])
def test_console_entry_points_answer_help(command: str) -> None:
    path = shutil.which(command)
    assert path, f"{command} is not installed; run pip install -e '.[test]'"
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout.lower()
