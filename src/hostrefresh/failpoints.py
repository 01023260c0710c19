"""Named points where the fault campaign makes an agent crash or fail on purpose (as etcd's gofail).

Some faults cannot be timed from outside: an agent that dies after it started a destination QEMU and
before it recorded it, or after it decided that a guest arrived and before it said so. The code names
such a point with :func:`hit`; it does nothing unless the process's environment names a directory in
``HOSTREFRESH_FAILPOINTS_DIR`` (only the fault campaign's simulated machines set it).

A point is armed by a file of its name in that directory, holding what to do there:

- ``crash``: the process SIGKILLs itself, as a power cut or an OOM kill would at that line;
- ``fail``: the error the site names is raised, as if the operation there had failed.

A point fires once. Its file is renamed to ``NAME.fired`` before it acts, so the agent started after a
crash goes on, and the campaign knows from the point itself that it fired.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV = "HOSTREFRESH_FAILPOINTS_DIR"

#: A destination QEMU is about to be started (``fail``: it will not start).
DESTINATION_START = "destination-start"
#: A destination QEMU runs, its monitor answers; nothing records it yet.
DESTINATION_LAUNCHED = "destination-launched"
#: A receiving host has the guest's whole state (``fail``: the stream did not load).
STATE_LOADED = "state-loaded"
#: A receiving host decided that the guest arrived; the guest is neither resumed nor recorded yet.
ARRIVAL_DECIDED = "arrival-decided"

POINTS = (DESTINATION_START, DESTINATION_LAUNCHED, STATE_LOADED, ARRIVAL_DECIDED)
ACTIONS = ("crash", "fail")


def hit(name: str, error: type[Exception] = RuntimeError) -> None:
    """Pass failpoint ``name``: nothing, unless it is armed (then crash, or raise ``error``)."""
    root = os.environ.get(ENV)
    if not root:
        return
    armed = Path(root) / name
    try:
        action = armed.read_text().strip()
        armed.rename(armed.with_name(f"{name}.fired"))  # once: a second caller finds no file
    except FileNotFoundError:
        return
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    raise error(f"failpoint {name}: {action}")


def arm(root: Path, name: str, action: str) -> None:
    """Arm failpoint ``name`` under ``root`` (the campaign's side)."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}: one of {', '.join(POINTS)}")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} for failpoint {name}: one of {', '.join(ACTIONS)}")
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(action + "\n")


def fired(root: Path, name: str) -> bool:
    """Whether failpoint ``name`` under ``root`` fired."""
    return (root / f"{name}.fired").exists()
