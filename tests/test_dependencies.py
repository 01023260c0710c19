"""The images install the package without extras, so what the operator, the agent (and the simulator's
agent the kind cluster runs) and the plugin load at start must come from the package's own
dependencies: matplotlib (timeline pictures) and cryptography (the local control plane) are extras."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("matplotlib", "cryptography")
ENTRY_POINTS = (
    "hostrefresh.operator.main",
    "hostrefresh.nodeagent.main",
    "hostrefresh.sim.agent",
    "hostrefresh.cli.main",
)


def test_the_binaries_load_no_extra_at_start() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {ENTRY_POINTS!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({EXTRAS_ONLY!r}))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == [], f"an entry point loads an extra at start: {result.stdout}"


def test_the_extras_are_not_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    extras = " ".join(r for reqs in project["optional-dependencies"].values() for r in reqs)
    for name in EXTRAS_ONLY:
        assert name not in core and name in extras, name
