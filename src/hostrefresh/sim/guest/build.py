"""Find and build the test guest image (`guest/` at the repository top level) on first use.

Tests and the benchmark call `guest_image()`; it runs `make` only when the image is missing or older
than its sources, under a file lock so parallel test processes do not build twice.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from hostrefresh.sourcetree import SourceTreeNotFoundError, source_tree

GUEST_DIR_ENV = "HOSTREFRESH_GUEST_DIR"
GUEST_BUILD_ENV = "HOSTREFRESH_GUEST_BUILD"
IMAGE_NAME = "hrguest.bin"
_SOURCES = ("boot.S", "guest.c", "link.ld", "Makefile")


class GuestBuildError(RuntimeError):
    """The guest sources are missing or `make` failed (the message carries its output)."""


def guest_source_dir() -> Path:
    """The `guest/` source directory: $HOSTREFRESH_GUEST_DIR, else the source checkout's."""
    env = os.environ.get(GUEST_DIR_ENV)
    if env:
        return Path(env)
    try:
        return source_tree("guest/Makefile", "guest/guest.c") / "guest"
    except SourceTreeNotFoundError as exc:
        raise GuestBuildError(f"test guest sources not found ({exc}); set {GUEST_DIR_ENV}") from exc


def _stale(image: Path, src: Path) -> bool:
    if not image.exists():
        return True
    built = image.stat().st_mtime
    return any((src / name).stat().st_mtime > built for name in _SOURCES)


def guest_image() -> Path:
    """Path of the built multiboot image, building it first if needed."""
    src = guest_source_dir()
    build = Path(os.environ.get(GUEST_BUILD_ENV, str(src / "build")))
    image = build / IMAGE_NAME
    if not _stale(image, src):
        return image
    build.mkdir(parents=True, exist_ok=True)
    with open(build / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stale(image, src):
            proc = subprocess.run(
                ["make", "-C", str(src), f"BUILD={build}"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0 or not image.exists():
                raise GuestBuildError(f"building the test guest failed:\n{proc.stdout}\n{proc.stderr}")
    return image
