"""The project's test guest: build it, boot it, and prove its memory survives handovers."""

from hostrefresh.sim.guest.build import GuestBuildError, guest_image
from hostrefresh.sim.guest.pattern import ControlBlock, PatternReport, Region
from hostrefresh.sim.guest.verifier import GuestVerifier, VerificationError

__all__ = [
    "ControlBlock",
    "GuestBuildError",
    "GuestVerifier",
    "PatternReport",
    "Region",
    "VerificationError",
    "guest_image",
]
