"""The refresh's target image as the agent accepts it: where it may live, what it may be, its checksum.

Whoever may create a HostRefresh names the next host's kernel (or, for a VMM-only refresh, the QEMU
binary every VM moves to), so the agent boots or runs only:

- files under the image directories the cluster's administrator allows (``--image-dir``, the chart's
  agent.imageDirs), judged by the real path, symlinks resolved, for the kernel and the initrd alike;
- regular files of at most ``--max-image-bytes``, checked before a byte is read (a device, a FIFO or a
  directory is refused without being opened), and read no further than that bound whatever the file
  claims to be;
- images whose sha256 is ``spec.target.checksum`` (a QEMU binary: ``spec.target.qemu.checksum``, and
  it must be executable).

Hashing runs in a worker thread, never on the agent's event loop, and its result is kept per file
identity (path, device, inode, size, mtime): the agent looks at the image on every pass, but reads it
again only when the file changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hostrefresh.api import IMAGE_PATH_MAX, TargetHost
from hostrefresh.l0 import Image

if TYPE_CHECKING:
    from hashlib import _Hash

DEFAULT_IMAGE_DIRS: tuple[Path, ...] = (Path("/var/lib/hostrefresh/images"),)
DEFAULT_MAX_IMAGE_BYTES = 256 << 20
#: Kernel parameters a refresh may give the new host unless the administrator says otherwise (the
#: chart's agent.kernelParams): console and logging, the root device, hugepages. Not init=, rdinit=,
#: lockdown=, module.sig_enforce= and the like: whoever writes a HostRefresh must not choose how the
#: host that will own the machine boots.
DEFAULT_KERNEL_PARAMS: tuple[str, ...] = (
    "console",
    "earlycon",
    "loglevel",
    "quiet",
    "panic",
    "root",
    "rootfstype",
    "rootwait",
    "ro",
    "rw",
    "hugepagesz",
    "hugepages",
    "default_hugepagesz",
)


def param_name(token: str) -> str:
    """A kernel parameter's name: ``name`` of ``name=value`` (module parameters keep their ``module.``)."""
    return token.split("=", 1)[0]


def refused_params(cmdline: str, allowed: Iterable[str]) -> list[str]:
    """The parameters of ``cmdline`` whose names are not in ``allowed``, in order."""
    names = set(allowed)
    return [token for token in cmdline.split() if param_name(token) not in names]


CHUNK = 1 << 20
#: How many (kernel, initrd) file identities keep their checksum.
CACHE_ENTRIES = 16


class ImageRefusedError(Exception):
    """The target image is not one the agent may boot; the message names the field and the fix."""


@dataclass(frozen=True, slots=True)
class FileId:
    """One version of one file: a change of content changes the size or the mtime (or the inode)."""

    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str, st: os.stat_result) -> FileId:
        return cls(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def hash_bounded(fd: int, h: _Hash, limit: int) -> int:
    """Feed ``fd`` to ``h`` up to its end; refuse (having read at most ``limit`` + one chunk) past ``limit``."""
    total = 0
    while chunk := os.read(fd, CHUNK):
        total += len(chunk)
        if total > limit:
            raise ImageRefusedError(f"it holds more than {limit} bytes")
        h.update(chunk)
    return total


class ImageStore:
    """The agent's gate to target images: the allowed directories, the size bound, the checksum cache.

    One store serves every node of an agent process (a fleet simulator's thousand nodes hash a
    shared image once).
    """

    def __init__(
        self,
        dirs: Iterable[str | Path] = DEFAULT_IMAGE_DIRS,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        kernel_params: Iterable[str] = DEFAULT_KERNEL_PARAMS,
    ) -> None:
        self.kernel_params = tuple(kernel_params)
        self.dirs = tuple(Path(d) for d in dirs)
        if not self.dirs:
            raise ValueError("at least one image directory is needed")
        if not all(d.is_absolute() for d in self.dirs):
            raise ValueError(f"image directories must be absolute paths: {', '.join(map(str, self.dirs))}")
        if max_bytes < 1:
            raise ValueError(f"the image size bound must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self._cache: OrderedDict[tuple[FileId, FileId | None], bytes] = OrderedDict()
        self._lock = threading.Lock()  # the cache
        self._hashing = threading.Lock()  # one image read at a time (the same image, usually)

    @property
    def allowed(self) -> str:
        return ", ".join(str(d) for d in self.dirs)

    async def load(self, target: TargetHost) -> Image:
        """The target image as the L0 will check it, off the event loop; raises ImageRefusedError."""
        return await asyncio.to_thread(self.load_sync, target)

    def load_sync(self, target: TargetHost) -> Image:
        if target.kernel is None or target.checksum is None:
            raise ImageRefusedError("spec.target.kernel and spec.target.checksum are required for a Host refresh")
        refused = refused_params(target.cmdline, self.kernel_params)
        if refused:
            raise ImageRefusedError(
                f"spec.target.cmdline: {' '.join(refused)} not allowed on this node (allowed parameters: "
                f"{', '.join(self.kernel_params) or 'none'}): remove them, or have an administrator allow them "
                "(chart value agent.kernelParams, the agent's --kernel-param)"
            )
        kernel = self._admit("spec.target.kernel", target.kernel)
        initrd = self._admit("spec.target.initrd", target.initrd) if target.initrd else None
        digest = self._digest(kernel, initrd)
        actual = "sha256:" + digest.hex()
        if actual != target.checksum:
            what = "kernel" + (" and initrd" if initrd else "")
            fix = "sha256sum KERNEL" if initrd is None else "cat KERNEL INITRD | sha256sum"
            raise ImageRefusedError(
                f"spec.target.checksum {target.checksum} does not match the {what} on this node ({actual}): "
                f"set it to `{fix}` of the image you mean, or put that image at the path named"
            )
        return Image(kernel=kernel.path, sha256=digest, initrd=initrd.path if initrd else "", cmdline=target.cmdline)

    async def load_vmm(self, target: TargetHost) -> str:
        """The real path of the VMM-only refresh's QEMU binary, once it passed the gate; ImageRefusedError."""
        return await asyncio.to_thread(self.load_vmm_sync, target)

    def load_vmm_sync(self, target: TargetHost) -> str:
        if target.qemu is None:
            raise ImageRefusedError(
                "spec.target.qemu is required for a VMM refresh: name the QEMU binary and its sha256"
            )
        field = "spec.target.qemu.binary"
        binary = self._admit(field, target.qemu.binary)
        if not os.access(binary.path, os.X_OK):
            raise ImageRefusedError(f"{field} {target.qemu.binary} is not executable: make it so (chmod +x)")
        actual = "sha256:" + self._digest(binary, None, fields=(field, "")).hex()
        if actual != target.qemu.checksum:
            raise ImageRefusedError(
                f"spec.target.qemu.checksum {target.qemu.checksum} does not match the binary on this node ({actual}): "
                "set it to `sha256sum BINARY` of the build you mean, or put that build at the path named"
            )
        return binary.path

    def _digest(
        self,
        first: FileId,
        second: FileId | None,
        fields: tuple[str, str] = ("spec.target.kernel", "spec.target.initrd"),
    ) -> bytes:
        """sha256 of ``first`` then ``second``, from the cache while the files are unchanged."""
        key = (first, second)
        digest = self._cached(key)
        if digest is None:
            with self._hashing:
                digest = self._cached(key)
                if digest is None:
                    digest = self._hash(first, second, fields)
                    with self._lock:
                        self._cache[key] = digest
                        while len(self._cache) > CACHE_ENTRIES:
                            self._cache.popitem(last=False)
        return digest

    def _cached(self, key: tuple[FileId, FileId | None]) -> bytes | None:
        with self._lock:
            digest = self._cache.get(key)
            if digest is not None:
                self._cache.move_to_end(key)
            return digest

    def _admit(self, field: str, path: str) -> FileId:
        """Where ``path`` really is, if that is inside an allowed directory and a small regular file."""
        if not os.path.isabs(path):
            raise ImageRefusedError(f"{field} {path!r} is not an absolute path")
        real = os.path.realpath(path)
        if not any(_inside(real, os.path.realpath(d)) for d in self.dirs):
            where = f" (it resolves to {real})" if real != os.path.normpath(path) else ""
            raise ImageRefusedError(
                f"{field} {path}{where} is outside the allowed image directories ({self.allowed}): put the image "
                "in one of them, or have the administrator allow its directory (agent --image-dir, chart value "
                "agent.imageDirs)"
            )
        if len(os.fsencode(real)) > IMAGE_PATH_MAX:
            raise ImageRefusedError(
                f"{field} {path} resolves to a path of more than {IMAGE_PATH_MAX} bytes, longer than the L0 takes: "
                "use a shorter path"
            )
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            raise ImageRefusedError(f"{field} {path} does not exist on this node") from None
        except OSError as exc:
            raise ImageRefusedError(f"{field} {path} cannot be examined: {exc.strerror}") from None
        self._check_file(field, path, st)
        return FileId.of(real, st)

    def _check_file(self, field: str, path: str, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise ImageRefusedError(
                f"{field} {path} is {_kind(st.st_mode)}, not a regular file: name the image file itself"
            )
        if st.st_size > self.max_bytes:
            raise ImageRefusedError(
                f"{field} {path} is {st.st_size} bytes, more than the {self.max_bytes} bytes the agent reads "
                "(agent --max-image-bytes, chart value agent.maxImageBytes): check that it is the image you mean, "
                "or raise the bound"
            )

    def _hash(self, first: FileId, second: FileId | None, fields: tuple[str, str]) -> bytes:
        """sha256 of the first file's bytes then the second's, each read at most to the size bound."""
        h = hashlib.sha256()
        for field, fid in ((fields[0], first), (fields[1], second)):
            if fid is not None:
                self._feed(field, fid, h)
        return h.digest()

    def _feed(self, field: str, fid: FileId, h: _Hash) -> None:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC  # a FIFO swapped in cannot block us
        try:
            fd = os.open(fid.path, flags)
        except OSError as exc:
            raise ImageRefusedError(f"{field} {fid.path} cannot be opened: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            self._check_file(field, fid.path, st)
            if FileId.of(fid.path, st) != fid:
                raise ImageRefusedError(
                    f"{field} {fid.path} changed while the agent examined it: write images elsewhere and move them in when complete"
                )
            try:
                hash_bounded(fd, h, self.max_bytes)
            except ImageRefusedError as exc:
                raise ImageRefusedError(
                    f"{field} {fid.path}: {exc}, more than the agent reads (agent --max-image-bytes, chart value "
                    "agent.maxImageBytes)"
                ) from None
            except OSError as exc:
                raise ImageRefusedError(f"{field} {fid.path} cannot be read: {exc.strerror}") from None
            if FileId.of(fid.path, os.fstat(fd)) != fid:
                raise ImageRefusedError(
                    f"{field} {fid.path} changed while the agent read it: write images elsewhere and move them in when complete"
                )
        finally:
            os.close(fd)


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` lies below ``directory`` (both real, normalized paths)."""
    return path != directory and os.path.commonpath([path, directory]) == directory
