"""Named points where the fault campaign makes an agent crash or fail on purpose (as etcd's gofail).

Some faults cannot be timed from outside: an agent that dies after it started a destination QEMU and
before it recorded it, or after it decided that a guest arrived and before it said so. The code names
such a point with :func:`hit`; it does nothing unless the process's environment names a directory in
``HOSTREFRESH_FAILPOINTS_DIR`` (only the fault campaign's simulated machines set it).

A point is armed by a file of its name in that directory, holding what to do there:

- ``crash``: the process SIGKILLs itself, as a power cut or an OOM kill would at that line;
- ``fail``: the error the site names is raised, as if the operation there had failed.

By default it acts at the first pass. A line ``ACTION@N`` acts at the N-th pass instead, and several
lines act at several passes (``fail@2`` and ``fail@3``: a forward move fails, then the recall that
follows), counted in ``NAME.passes`` across restarts of the process. Once the last armed pass is
reached the file is renamed to ``NAME.fired``, before the point acts, so the agent started after a
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
#: A sending host decided that its send is aborted; its paused source is not resumed yet.
SEND_ABORTED = "send-aborted"
#: A sending host stopped its stale source once the guest arrived; its record still lists the VM.
SEND_FINISHED = "send-finished"

POINTS = (DESTINATION_START, DESTINATION_LAUNCHED, STATE_LOADED, ARRIVAL_DECIDED, SEND_ABORTED, SEND_FINISHED)
ACTIONS = ("crash", "fail")


def _armed_passes(text: str) -> dict[int, str]:
    """pass number -> action, from an armed file's lines (``ACTION`` or ``ACTION@N``)."""
    passes = {}
    for line in text.split():
        action, _, nth = line.partition("@")
        passes[int(nth or 1)] = action
    return passes


def hit(name: str, error: type[Exception] = RuntimeError) -> None:
    """Pass failpoint ``name``: nothing, unless it is armed for this pass (then crash, or raise ``error``)."""
    root = os.environ.get(ENV)
    if not root:
        return
    armed = Path(root) / name
    try:
        armed_passes = _armed_passes(armed.read_text())
    except FileNotFoundError:
        return
    counter = armed.with_name(f"{name}.passes")
    this = (int(counter.read_text()) if counter.exists() else 0) + 1
    counter.write_text(f"{this}\n")
    action = armed_passes.get(this)
    if action is None:
        return
    if this >= max(armed_passes):
        armed.rename(armed.with_name(f"{name}.fired"))  # a later pass finds no file
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    raise error(f"failpoint {name}: {action} (pass {this})")


def arm(root: Path, name: str, action: str, at: tuple[int, ...] = (1,)) -> None:
    """Arm failpoint ``name`` under ``root`` to act at the passes ``at`` (the campaign's side)."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}: one of {', '.join(POINTS)}")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} for failpoint {name}: one of {', '.join(ACTIONS)}")
    if not at or min(at) < 1:
        raise ValueError(f"failpoint {name}: passes {at} must be counted from 1")
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("".join(f"{action}@{n}\n" for n in sorted(set(at))))


def fired(root: Path, name: str) -> bool:
    """Whether failpoint ``name`` under ``root`` reached the last pass it was armed for."""
    return (root / f"{name}.fired").exists()
