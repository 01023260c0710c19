"""The source checkout of hostrefresh, for the few things that need more than the installed package.

Building the cffi extension (``l0module/``), the control plane's tools (the Go modules under
``controlplane/``) and the test guest (``guest/``) read files of the repository that the package does
not ship. `source_tree` finds the checkout this package is imported from (an editable install or
``PYTHONPATH=src``); an installed package has none, and asking for it then fails with an error that
names what was wanted.

This module imports nothing of hostrefresh: ``setup.py`` lets cffi's build script import it before the
package is installed.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

PROJECT = "hostrefresh"
_PACKAGE_DIR = Path(__file__).resolve().parent


class SourceTreeNotFoundError(FileNotFoundError):
    """The package runs without its source checkout, or the checkout lacks what was asked for."""


def _is_project_root(directory: Path) -> bool:
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(name == PROJECT and (directory / "src" / PROJECT).resolve() == _PACKAGE_DIR)


@functools.cache
def _find_root() -> Path | None:
    return next((d for d in _PACKAGE_DIR.parents if _is_project_root(d)), None)


def source_tree(*needed: str) -> Path:
    """The root of the source checkout this package is imported from: the directory above it holding
    this project's ``pyproject.toml``, with the package at ``src/hostrefresh``.

    ``needed``: the paths under the root the caller reads (``"l0module"``, ``"controlplane"``, ...).
    Raises `SourceTreeNotFoundError` naming them when there is no checkout or one of them is missing.
    """
    wanted = ", ".join(needed) or "files"
    root = _find_root()
    if root is None:
        raise SourceTreeNotFoundError(
            f"{wanted} of the {PROJECT} source checkout needed, but the package at {_PACKAGE_DIR} is not in one "
            f"(no pyproject.toml of project {PROJECT!r} above it with the package under src/): run from a clone of "
            "the repository, installed with `pip install -e .` or imported with PYTHONPATH=src"
        )
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise SourceTreeNotFoundError(f"the {PROJECT} source checkout at {root} has no {', '.join(missing)}")
    return root
