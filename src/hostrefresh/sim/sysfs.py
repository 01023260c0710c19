"""A fake sysfs that behaves like the kernel's CPU/memory hotplug files, for tests and simulated nodes.

The tree is plain files (`devices/system/cpu/cpuN/online`, `devices/system/memory/memoryN/state`,
`valid_zones`, `block_size_bytes`) so it can be inspected; kernel behaviour that files cannot show comes
from a rules file `fake-sysfs.json` at the root, read on every write so a test can change it live:
- CPU0 has no `online` file (as on x86 without BOOTPARAM_HOTPLUG_CPU0); `refuse` paths fail with EPERM;
- `ebusy` paths fail to go offline with EBUSY (unmovable pages in the block);
- `hang` paths block the writing thread for `hang_seconds` (then EBUSY), like a stuck page migration;
- offlining an already offline memory block is EINVAL, like the kernel; CPUs accept it.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hostrefresh.nodeagent.sysfs import CPU_DIR, MEMORY_DIR

RULES_FILE = "fake-sysfs.json"
FIRED_FILE = "fake-sysfs.fired"  # one line per rule that applied (see fired_rules)


@dataclass
class FakeRules:
    ebusy: list[str] = field(default_factory=list)
    hang: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)  # offline completes, but only after hang_seconds
    refuse: list[str] = field(default_factory=list)
    hang_seconds: float = 3600.0
    movable_blocks: list[int] = field(default_factory=list)  # blocks whose memory may be ZONE_MOVABLE


def cpu_online_path(cpu: int) -> str:
    return f"{CPU_DIR}/cpu{cpu}/online"


def memory_state_path(block: int) -> str:
    return f"{MEMORY_DIR}/memory{block}/state"


def build_fake_sysfs(
    root: Path,
    *,
    cpus: int = 4,
    memory_blocks: int = 16,
    block_size: int = 128 << 20,
    movable_blocks: list[int] | None = None,
    rules: FakeRules | None = None,
) -> FakeRules:
    """Create a tree like a booted kernel's: all CPUs and blocks online; writes the rules file."""
    movable = list(range(memory_blocks // 2, memory_blocks)) if movable_blocks is None else movable_blocks
    rules = rules or FakeRules()
    rules.movable_blocks = movable
    for cpu in range(cpus):
        d = root / CPU_DIR / f"cpu{cpu}"
        d.mkdir(parents=True, exist_ok=True)
        if cpu != 0:
            (d / "online").write_text("1\n")
    (root / CPU_DIR / "online").write_text(f"0-{cpus - 1}\n")
    mem = root / MEMORY_DIR
    mem.mkdir(parents=True, exist_ok=True)
    (mem / "block_size_bytes").write_text(f"{block_size:x}\n")
    for block in range(memory_blocks):
        d = mem / f"memory{block}"
        d.mkdir(exist_ok=True)
        (d / "state").write_text("online\n")
        (d / "valid_zones").write_text("Movable\n" if block in movable else "Normal\n")
        (d / "phys_index").write_text(f"{block:08x}\n")
    save_rules(root, rules)
    return rules


def save_rules(root: Path, rules: FakeRules) -> None:
    (root / RULES_FILE).write_text(json.dumps(asdict(rules), indent=2))


def _pause(seconds: float) -> None:
    """The fake kernel's own delays. Not time.sleep: the fake runs inside the agent's process, and the
    campaign's clock-skew fault (libfaketime) makes clock_nanosleep fail there with EINVAL, a fault
    of the preload, not of the agent, that a real kernel's page migration never sees."""
    threading.Event().wait(seconds)


def fired_rules(root: Path) -> list[str]:
    """Each rule that applied to a write, in order, as "<rule> <path>" (what a fault campaign counts)."""
    try:
        return (root / FIRED_FILE).read_text().splitlines()
    except FileNotFoundError:
        return []


def _record_fired(root: Path, rule: str, path: str) -> None:
    with open(root / FIRED_FILE, "a") as log:  # one short append per line: concurrent writers interleave whole lines
        log.write(f"{rule} {path}\n")


def load_rules(root: Path) -> FakeRules:
    try:
        return FakeRules(**json.loads((root / RULES_FILE).read_text()))
    except FileNotFoundError:
        return FakeRules()


def _rewrite(target: Path, text: str) -> None:
    """Replace a small file's content in place, without truncating it to zero first.

    ext4 flushes a file truncated to zero when it is closed (its ``auto_da_alloc`` safeguard), which
    made each fake sysfs write cost ~250 us of kernel time instead of ~10. The file is cut to the new
    length before a shorter value is written: a concurrent reader sees the old value, the new one or,
    for a moment, the old one cut short (for the values written here, again the old or the new one
    after strip()), never an empty file.
    """
    data = text.encode()
    fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if len(data) < os.fstat(fd).st_size:
            os.ftruncate(fd, len(data))
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


class FakeSysfsIO:
    """`SysfsIO` over a fake tree; `release()` wakes writes hanging on a `hang` rule."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._prefix = str(root) + os.sep  # reads use plain strings: a simulator hosting hundreds of
        self._release = threading.Event()  # nodes reads these files thousands of times a second
        self._lock = threading.Lock()

    def release(self) -> None:
        self._release.set()

    def read(self, path: str) -> str:
        with open(self._prefix + path, "rb") as f:
            return f.read().decode().strip()

    def exists(self, path: str) -> bool:
        return os.path.exists(self._prefix + path)

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._prefix + path))
        except FileNotFoundError:
            return []

    def write(self, path: str, value: str) -> None:
        target = self.root / path
        if not target.exists():
            raise OSError(errno.ENOENT, "No such file or directory", str(target))
        rules = load_rules(self.root)
        value = value.strip()
        if path in rules.refuse:
            _record_fired(self.root, "refuse", path)
            raise OSError(errno.EPERM, "Operation not permitted", str(target))
        going_offline = value in ("0", "offline")
        if going_offline and path in rules.hang:
            _record_fired(self.root, "hang", path)
            self._release.wait(rules.hang_seconds)
            raise OSError(errno.EBUSY, "Device or resource busy", str(target))
        if going_offline and path in rules.late:
            _record_fired(self.root, "late", path)
            _pause(rules.hang_seconds)  # then the kernel finishes the offline after all
        if going_offline and path in rules.ebusy:
            _record_fired(self.root, "ebusy", path)
            raise OSError(errno.EBUSY, "Device or resource busy", str(target))
        with self._lock:
            if path.startswith(CPU_DIR):
                self._write_cpu(target, value)
            else:
                self._write_memory(target, value, rules)

    @staticmethod
    def _write_cpu(target: Path, value: str) -> None:
        if value not in ("0", "1"):
            raise OSError(errno.EINVAL, "Invalid argument", str(target))
        _rewrite(target, f"{value}\n")

    @staticmethod
    def _write_memory(target: Path, value: str, rules: FakeRules) -> None:
        if target.name != "state":
            raise OSError(errno.EACCES, "Permission denied", str(target))
        block = int(target.parent.name.removeprefix("memory"))
        movable = block in rules.movable_blocks
        current = target.read_text().strip()
        zones = target.parent / "valid_zones"
        if value == "offline":
            if current == "offline":
                raise OSError(errno.EINVAL, "Invalid argument", str(target))
            _pause(0.001)  # page migration takes a moment
            _rewrite(target, "offline\n")
            _rewrite(zones, "Normal Movable\n" if movable else "Normal\n")
        elif value in ("online", "online_kernel", "online_movable"):
            if current == "online":
                raise OSError(errno.EINVAL, "Invalid argument", str(target))
            if value == "online_movable" and not movable:
                raise OSError(errno.EINVAL, "Invalid argument", str(target))
            _rewrite(target, "online\n")
            _rewrite(zones, "Movable\n" if value == "online_movable" else "Normal\n")
        else:
            raise OSError(errno.EINVAL, "Invalid argument", str(target))
