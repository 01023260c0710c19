"""Each host's own view of CPUs and memory: a fake sysfs tree per host.

At L1 boot the new host's kernel sees only its partition (all online); at the retire the old
host's CPUs and memory blocks are hot-added to the survivor, offline, as a kernel sees resources that
arrive; the agent then onlines them (Devirtualizing), except what was offline before the refresh.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hostrefresh.nodeagent.sysfs import CPU_DIR, MEMORY_DIR
from hostrefresh.sim.sysfs import FakeRules, load_rules, save_rules


def _appear(final: Path, files: dict[str, str]) -> None:
    """A device directory appears whole (built aside, then renamed), as the kernel's do: a reader
    never sees a CPU or memory block without its files."""
    if final.exists():
        return
    tmp = final.with_name(final.name + ".new")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (tmp / name).write_text(text)
    os.replace(tmp, final)


def _add_cpu(root: Path, cpu: int, online: bool) -> None:
    # CPU0 is not hot-pluggable (no online file), as on x86.
    files = {} if cpu == 0 else {"online": "1\n" if online else "0\n"}
    _appear(root / CPU_DIR / f"cpu{cpu}", files)


def _add_block(root: Path, block: int, online: bool, zones: str) -> None:
    files = {"state": "online\n" if online else "offline\n", "valid_zones": zones, "phys_index": f"{block:08x}\n"}
    _appear(root / MEMORY_DIR / f"memory{block}", files)


def _zones(tree: Path, block: int) -> str:
    try:
        return (tree / MEMORY_DIR / f"memory{block}" / "valid_zones").read_text()
    except FileNotFoundError:
        return "Movable\n"


def boot_view(machine: Path, new_root: Path, cpus: frozenset[int], blocks: frozenset[int], block_size: int) -> None:
    """The sysfs of a host booted in a partition: its CPUs and blocks, all online."""
    shutil.rmtree(new_root, ignore_errors=True)
    (new_root / MEMORY_DIR).mkdir(parents=True)
    (new_root / MEMORY_DIR / "block_size_bytes").write_text(f"{block_size:x}\n")
    for cpu in sorted(cpus):
        _add_cpu(new_root, cpu, True)
    for block in sorted(blocks):
        _add_block(new_root, block, True, _zones(machine, block))
    save_rules(new_root, FakeRules(movable_blocks=sorted(blocks)))


def hot_add(old_root: Path, new_root: Path) -> tuple[list[int], list[int]]:
    """Add the retired host's CPUs and blocks to the survivor's view, offline; returns what was added."""
    cpus: list[int] = []
    blocks: list[int] = []
    for d in sorted((old_root / CPU_DIR).glob("cpu[0-9]*")):
        cpu = int(d.name[3:])
        if not (new_root / CPU_DIR / d.name).exists():
            _add_cpu(new_root, cpu, cpu == 0)
            cpus.append(cpu)
    for d in sorted((old_root / MEMORY_DIR).glob("memory[0-9]*")):
        block = int(d.name[6:])
        if not (new_root / MEMORY_DIR / d.name).exists():
            _add_block(new_root, block, False, _zones(old_root, block))
            blocks.append(block)
    rules = load_rules(new_root)
    rules.movable_blocks = sorted(set(rules.movable_blocks) | set(load_rules(old_root).movable_blocks))
    save_rules(new_root, rules)
    return cpus, blocks
