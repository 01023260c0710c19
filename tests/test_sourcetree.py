"""Finding the source checkout: here it is found; an installed package without it gets a clear error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hostrefresh
from hostrefresh.sourcetree import SourceTreeNotFoundError, source_tree

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(hostrefresh.__file__).resolve().parent


def test_the_checkout_is_the_repository_holding_the_package() -> None:
    assert source_tree() == REPO_ROOT
    assert source_tree("l0module", "controlplane", "guest/Makefile") == REPO_ROOT


def test_a_missing_part_is_named() -> None:
    with pytest.raises(SourceTreeNotFoundError, match=r"source checkout at .* has no no-such-dir"):
        source_tree("l0module", "no-such-dir")


@pytest.mark.parametrize("pyproject", [None, '[project]\nname = "something-else"\n'])
def test_without_the_checkout_the_error_names_what_is_needed(tmp_path: Path, pyproject: str | None) -> None:
    """The package copied elsewhere (as into site-packages), alone or under another project's tree."""
    site = tmp_path / "src"
    (site / "hostrefresh").mkdir(parents=True)
    for name in ("__init__.py", "sourcetree.py"):
        shutil.copy(PACKAGE / name, site / "hostrefresh" / name)
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "l0module").mkdir()
    code = (
        "from hostrefresh.sourcetree import SourceTreeNotFoundError, source_tree\n"
        "try:\n    source_tree('l0module')\nexcept SourceTreeNotFoundError as exc:\n    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert "l0module of the hostrefresh source checkout needed" in out, out
    assert str(site / "hostrefresh") in out and "pip install -e ." in out, out
