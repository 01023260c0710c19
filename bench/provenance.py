"""Where a recorded figure comes from: one definition for every file under bench/results/.

Every script that writes into bench/results/ records ``provenance()`` under the key ``"provenance"``
of its JSON and renders it with ``markdown()`` in its Markdown:

- ``commit``: the full sha of HEAD, with ``-dirty`` appended when the working tree differs from it
  (tracked files changed, or untracked files that git does not ignore) outside ``bench/results/``
  (results of earlier runs change no code);
- ``date``: when the run was recorded, ISO 8601 in UTC (``2026-12-08T10:15:00Z``);
- ``machine``: ``cpu_model`` (``model name`` of /proc/cpuinfo), ``cores`` (``os.cpu_count()``),
  ``memory_gib`` (``MemTotal`` of /proc/meminfo), ``kernel`` (``uname -r``), ``accelerator``
  (``"kvm"`` when /dev/kvm can be opened for reading and writing, else ``"tcg"``);
- ``command``: the command as run (``sys.argv``, joined as a shell would read it).

``tests/test_bench_results.py`` fails when a result file lacks any of these (``missing()`` says what).
Call ``provenance()`` when the run starts, so that ``commit`` names the code that ran even if the
tree changes while a long benchmark runs.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The key every result file keeps its provenance under.
KEY = "provenance"
#: The fields of ``provenance()`` and of its ``machine``.
FIELDS = ("commit", "date", "machine", "command")
MACHINE_FIELDS = ("cpu_model", "cores", "memory_gib", "kernel", "accelerator")


def commit(root: Path = ROOT) -> str:
    """The full sha of HEAD, with ``-dirty`` when the tree differs from it; ``unknown`` outside git."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    sha = head.stdout.strip()
    if head.returncode != 0 or not sha:
        return "unknown"
    # Results written by earlier benchmarks of the same session are no change to the code measured.
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":(exclude)bench/results"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{sha}-dirty" if status.returncode != 0 or status.stdout.strip() else sha


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def accelerator(dev: str = "/dev/kvm") -> str:
    """``kvm`` when /dev/kvm can be opened read-write (what QEMU needs), else ``tcg``."""
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return "tcg"
    os.close(fd)
    return "kvm"


def machine() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "accelerator": accelerator(),
    }


def command(argv: list[str] | None = None) -> str:
    """The command as run: ``python bench/x.py --flag`` (the interpreter named ``python``)."""
    args = list(sys.argv if argv is None else argv)
    script = args[0] if args else ""
    if script and Path(script).is_absolute():
        with contextlib.suppress(ValueError):
            script = str(Path(script).relative_to(ROOT))
    return shlex.join(["python", script, *args[1:]]) if script else "python"


def provenance(argv: list[str] | None = None, *, command_line: str | None = None) -> dict[str, Any]:
    """This run's provenance; ``command_line`` when the command is not ``sys.argv`` (pytest's plugins)."""
    return {
        "commit": commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "command": command_line or command(argv),
    }


def missing(doc: Any) -> list[str]:
    """What a result file's provenance lacks (empty when complete)."""
    prov = doc.get(KEY) if isinstance(doc, dict) else None
    if not isinstance(prov, dict):
        return [KEY]
    out = [f for f in FIELDS if not prov.get(f)]
    mach = prov.get("machine")
    if isinstance(mach, dict):
        out += [f"machine.{f}" for f in MACHINE_FIELDS if mach.get(f) in (None, "")]
    elif "machine" not in out:
        out.append("machine")
    return out


def markdown(prov: dict[str, Any]) -> str:
    """The provenance as one paragraph for a result's Markdown."""
    m = prov["machine"]
    memory = "?" if m.get("memory_gib") is None else f"{m['memory_gib']:g} GiB"
    return (
        f"Recorded {prov['date']} at commit `{prov['commit']}` with `{prov['command']}`; machine: "
        f"{m['cpu_model']}, {m['cores']} cores, {memory}, kernel {m['kernel']}, accelerator {m['accelerator']}."
    )
