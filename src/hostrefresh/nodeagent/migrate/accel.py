"""Choose KVM when /dev/kvm is usable, TCG otherwise (or when forced for tests)."""

from __future__ import annotations

import os

FORCE_TCG_ENV = "HOSTREFRESH_FORCE_TCG"


def kvm_usable(dev: str = "/dev/kvm") -> bool:
    """True if this process can open the KVM device read-write (existence alone is not enough)."""
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def choose_accel() -> str:
    """`kvm` or `tcg`; HOSTREFRESH_FORCE_TCG=1 forces TCG."""
    if os.environ.get(FORCE_TCG_ENV, "") not in ("", "0"):
        return "tcg"
    return "kvm" if kvm_usable() else "tcg"
