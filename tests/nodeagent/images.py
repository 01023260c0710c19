"""A simulated target host image for node-agent tests: a file in an allowed image directory, and its spec."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hostrefresh.nodeagent.images import ImageStore


def target_image(tmp_path: Path, version: str = "2") -> dict[str, str]:
    """``spec.target`` of a kernel image written under ``tmp_path/images`` (see ``image_store``)."""
    kernel = tmp_path / "images" / "vmlinuz"
    kernel.parent.mkdir(exist_ok=True)
    kernel.write_bytes(b"simulated kernel\n" * 32)
    return {
        "version": version,
        "kernel": str(kernel),
        "checksum": "sha256:" + hashlib.sha256(kernel.read_bytes()).hexdigest(),
    }


def image_store(tmp_path: Path) -> ImageStore:
    """The agent's image store allowing ``target_image``'s directory."""
    return ImageStore([tmp_path / "images"])
