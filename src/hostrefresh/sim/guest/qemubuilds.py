"""A second real QEMU build beside the installed one, for VMM-only refreshes between real versions.

Debian publishes more than one build of the same QEMU release (the current point release and
earlier security updates). ``other_build()`` unpacks the newest build older than the installed one
into the cache (``<cache>/qemu/<version>/``), without installing anything: the machine keeps its
QEMU, and the tests hand VMs between the two. The unpacked binary reads its firmware and keymaps
from the installed data package (linked in beside it), which is fine within one release.

``python -m hostrefresh.sim.guest.qemubuilds`` fetches it ahead (``make setup``) and prints it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hostrefresh.controlplane.tools import cache_root

PACKAGE = "qemu-system-x86"
BINARY = "usr/bin/qemu-system-x86_64"
INSTALLED_DATA = "/usr/share/qemu"


class QemuBuildError(RuntimeError):
    """No second build could be found or unpacked; the message says what was tried."""


@dataclass(frozen=True)
class QemuBuild:
    version: str  # the Debian package version, e.g. 1:7.2+dfsg-7+deb12u15
    binary: Path


def _run(*argv: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=600)
    if done.returncode != 0:
        raise QemuBuildError(f"{' '.join(argv)} exited {done.returncode}: {(done.stderr or done.stdout)[-800:]}")
    return done.stdout


def installed_version() -> str:
    return _run("dpkg-query", "-W", "-f=${Version}", PACKAGE).strip()


def available_versions() -> list[str]:
    """Every version of the package the configured Debian archives offer."""
    out = _run("apt-cache", "madison", PACKAGE)
    return [line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2]


def _older(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


def pick_older(installed: str, versions: list[str]) -> str:
    """The newest version older than ``installed``."""
    older = [v for v in set(versions) if _older(v, installed)]
    if not older:
        raise QemuBuildError(
            f"the archives offer no {PACKAGE} older than the installed {installed} (they offer: {', '.join(versions)})"
        )
    best = older[0]
    for v in older[1:]:
        if _older(best, v):
            best = v
    return best


def _share_installed_data(root: Path) -> None:
    """The unpacked QEMU looks for firmware next to itself (``../share/qemu``): link the installed ones in."""
    data = root / "usr" / "share" / "qemu"
    data.mkdir(parents=True, exist_ok=True)
    installed = Path(INSTALLED_DATA)
    if not installed.is_dir():
        raise QemuBuildError(f"{INSTALLED_DATA} is missing: install qemu-system-data (make setup)")
    for entry in installed.iterdir():
        link = data / entry.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(entry)


def unpack(version: str) -> QemuBuild:
    """``version`` unpacked in the cache (once; a lock keeps parallel callers from fetching twice)."""
    root = cache_root() / "qemu" / version.replace(":", "_")
    binary = root / BINARY
    if binary.is_file():
        _share_installed_data(root)
        return QemuBuild(version, binary)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return QemuBuild(version, binary)
        with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
            work = Path(tmp)
            os.chmod(work, 0o755)  # apt's download sandbox user may write here
            _run("apt-get", "download", "-q", f"{PACKAGE}={version}", cwd=work)
            debs = list(work.glob("*.deb"))
            if len(debs) != 1:
                raise QemuBuildError(f"apt-get download {PACKAGE}={version} left {len(debs)} packages")
            _run("dpkg-deb", "-x", str(debs[0]), str(work / "root"))
            if not (work / "root" / BINARY).is_file():
                raise QemuBuildError(f"{PACKAGE} {version} has no {BINARY}")
            _share_installed_data(work / "root")
            shutil.rmtree(root, ignore_errors=True)
            (work / "root").rename(root)
    return QemuBuild(version, binary)


def other_build() -> QemuBuild:
    """The newest build of the installed QEMU's package older than the installed one, unpacked."""
    return unpack(pick_older(installed_version(), available_versions()))


def installed_build() -> QemuBuild:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise QemuBuildError("qemu-system-x86_64 is not installed (make setup installs it)")
    return QemuBuild(installed_version(), Path(path))


def image_tree(build: QemuBuild, tree: Path) -> Path:
    """``build``'s binary copied into ``tree/bin`` (an image directory the agent allows), with
    ``tree/share/qemu`` linked to its firmware: QEMU finds its data relative to its binary."""
    binary = tree / "bin" / build.binary.name
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(build.binary, binary)
        (tree / "share").mkdir(exist_ok=True)
        (tree / "share" / "qemu").symlink_to(build.binary.resolve().parent.parent / "share" / "qemu")
    return binary


def target_spec(binary: Path, version: str) -> dict[str, object]:
    """``spec.target`` of a VMM refresh to ``binary`` (its sha256 computed here)."""
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    return {"version": version, "qemu": {"binary": str(binary), "checksum": f"sha256:{digest}"}}


def main() -> None:
    build = other_build()
    print(f"{build.version} {build.binary}")


if __name__ == "__main__":
    main()
