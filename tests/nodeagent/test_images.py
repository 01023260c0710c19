"""The agent's gate to target images: only allowed directories, only small regular files, only the
checksum the spec names; hashed off the event loop and once per version of the file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from hostrefresh.api import HostRefreshSpec, TargetHost
from hostrefresh.nodeagent import images as images_module
from hostrefresh.nodeagent.images import DEFAULT_IMAGE_DIRS, ImageRefusedError, ImageStore, hash_bounded
from hostrefresh.nodeagent.main import parse_args
from hostrefresh.nodeagent.runtime import PreflightError
from hostrefresh.sim import agent as sim_agent
from hostrefresh.sim.node import SimNodeSpec, create_sim_node, open_sim_node

KERNEL = b"simulated kernel\n" * 64
NO_SUCH_SUM = "sha256:" + "0" * 64


def _sum(*parts: bytes) -> str:
    return "sha256:" + hashlib.sha256(b"".join(parts)).hexdigest()


def _target(kernel: str | Path, checksum: str = _sum(KERNEL), initrd: str | Path | None = None) -> TargetHost:
    return TargetHost(
        version="2", kernel=str(kernel), initrd=str(initrd) if initrd else None, checksum=checksum, cmdline="quiet"
    )


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    return d


@pytest.fixture
def kernel(image_dir: Path) -> Path:
    path = image_dir / "vmlinuz"
    path.write_bytes(KERNEL)
    return path


def _refused(store: ImageStore, target: TargetHost, *fragments: str) -> str:
    async def load() -> None:
        await asyncio.wait_for(store.load(target), 10)  # never a read without end

    with pytest.raises(ImageRefusedError) as info:
        asyncio.run(load())
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_an_allowed_image_loads_with_its_real_path(image_dir: Path, kernel: Path) -> None:
    initrd = image_dir / "initrd.img"
    initrd.write_bytes(b"initrd")
    alias = image_dir / "current"
    alias.symlink_to(kernel.name)  # a link inside the allowed directory is fine: its target is checked
    image = asyncio.run(ImageStore([image_dir]).load(_target(alias, _sum(KERNEL, b"initrd"), initrd)))
    assert image.kernel == str(kernel)
    assert image.initrd == str(initrd)
    assert image.cmdline == "quiet"
    assert image.sha256 == hashlib.sha256(KERNEL + b"initrd").digest()


def test_dev_zero_is_refused_without_a_read(image_dir: Path) -> None:
    # Outside the allowed directories...
    _refused(ImageStore([image_dir]), _target("/dev/zero"), "spec.target.kernel /dev/zero", "outside", str(image_dir))
    # ... and even where devices were allowed: a device is no image.
    _refused(ImageStore(["/dev"]), _target("/dev/zero"), "spec.target.kernel /dev/zero is a character device")


def test_the_default_allows_only_the_image_directory() -> None:
    assert ImageStore().dirs == DEFAULT_IMAGE_DIRS
    _refused(ImageStore(), _target("/etc/hostname"), "outside", "/var/lib/hostrefresh/images", "--image-dir")


def test_a_directory_is_refused(image_dir: Path) -> None:
    (image_dir / "boot").mkdir()
    _refused(ImageStore([image_dir]), _target(image_dir / "boot"), "spec.target.kernel", "is a directory")


def test_a_fifo_is_refused_before_it_is_opened(image_dir: Path) -> None:
    fifo = image_dir / "vmlinuz.fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    _refused(ImageStore([image_dir]), _target(fifo), "spec.target.kernel", "is a FIFO, not a regular file")


def test_a_symlink_out_of_the_allowed_directory_is_refused(tmp_path: Path, image_dir: Path) -> None:
    outside = tmp_path / "elsewhere" / "vmlinuz"
    outside.parent.mkdir()
    outside.write_bytes(KERNEL)
    (image_dir / "vmlinuz").symlink_to(outside)
    message = _refused(ImageStore([image_dir]), _target(image_dir / "vmlinuz"), "spec.target.kernel", "outside")
    assert f"resolves to {outside}" in message
    # A directory named like an allowed one is not inside it.
    sibling = tmp_path / "images-evil"
    sibling.mkdir()
    (sibling / "vmlinuz").write_bytes(KERNEL)
    _refused(ImageStore([image_dir]), _target(sibling / "vmlinuz"), "outside")


def test_the_initrd_is_held_to_the_same_rules(tmp_path: Path, image_dir: Path, kernel: Path) -> None:
    stray = tmp_path / "initrd.img"
    stray.write_bytes(b"initrd")
    _refused(ImageStore([image_dir]), _target(kernel, initrd=stray), "spec.target.initrd", "outside")


def test_an_oversize_file_is_refused_before_it_is_read(
    image_dir: Path, kernel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = image_dir / "huge"
    with open(big, "wb") as f:
        f.truncate(2048)  # sparse

    def no_read(*args: object) -> None:
        raise AssertionError("an oversize image was read")

    monkeypatch.setattr(images_module, "hash_bounded", no_read)
    _refused(ImageStore([image_dir], max_bytes=1024), _target(big), "spec.target.kernel", "2048 bytes", "1024")
    _refused(ImageStore([image_dir], max_bytes=1024), _target(big), "--max-image-bytes", "agent.maxImageBytes")


def test_reading_stops_at_the_bound_whatever_the_file_claims() -> None:
    fd = os.open("/dev/zero", os.O_RDONLY)  # endless, and stat calls it size 0
    try:
        with pytest.raises(ImageRefusedError, match="more than 4194304 bytes"):
            hash_bounded(fd, hashlib.sha256(), 4 << 20)
    finally:
        os.close(fd)


def test_a_checksum_mismatch_is_refused(image_dir: Path, kernel: Path) -> None:
    message = _refused(
        ImageStore([image_dir]), _target(kernel, NO_SUCH_SUM), f"spec.target.checksum {NO_SUCH_SUM} does not match"
    )
    assert _sum(KERNEL) in message
    assert "sha256sum" in message


def test_the_checksum_is_required_for_a_host_refresh() -> None:
    target = {"version": "2", "kernel": "/var/lib/hostrefresh/images/vmlinuz"}
    with pytest.raises(ValidationError, match=r"spec.target.kernel and spec.target.checksum are required"):
        HostRefreshSpec.model_validate({"nodeName": "n1", "target": target})
    with pytest.raises(ImageRefusedError, match="checksum"):
        ImageStore().load_sync(TargetHost.model_validate(target))


def test_a_vmm_refresh_needs_the_qemu_binary_and_not_a_kernel() -> None:
    with pytest.raises(ValidationError, match=r"spec.target.qemu is required when spec.scope is VMM"):
        HostRefreshSpec.model_validate({"nodeName": "n1", "scope": "VMM", "target": {"version": "2"}})
    qemu = {"binary": "/var/lib/hostrefresh/images/qemu", "checksum": _sum(KERNEL)}
    spec = HostRefreshSpec.model_validate({"nodeName": "n1", "scope": "VMM", "target": {"version": "2", "qemu": qemu}})
    assert spec.target.kernel is None
    with pytest.raises(ValidationError, match="checksum"):
        HostRefreshSpec.model_validate(
            {"nodeName": "n1", "scope": "VMM", "target": {"version": "2", "qemu": {"binary": "/x/qemu"}}}
        )


def _vmm_target(binary: Path, checksum: str) -> TargetHost:
    return TargetHost.model_validate({"version": "q2", "qemu": {"binary": str(binary), "checksum": checksum}})


def test_a_qemu_binary_passes_the_same_gate(image_dir: Path, tmp_path: Path) -> None:
    binary = image_dir / "qemu-system-x86_64"
    binary.write_bytes(KERNEL)
    store = ImageStore([image_dir])
    with pytest.raises(ImageRefusedError, match=r"spec.target.qemu.binary .* is not executable"):
        store.load_vmm_sync(_vmm_target(binary, _sum(KERNEL)))
    binary.chmod(0o755)
    assert store.load_vmm_sync(_vmm_target(binary, _sum(KERNEL))) == str(binary.resolve())
    with pytest.raises(ImageRefusedError, match=f"spec.target.qemu.checksum {NO_SUCH_SUM} does not match"):
        store.load_vmm_sync(_vmm_target(binary, NO_SUCH_SUM))
    outside = tmp_path / "elsewhere-qemu"
    outside.write_bytes(KERNEL)
    outside.chmod(0o755)
    with pytest.raises(ImageRefusedError, match=r"spec.target.qemu.binary .* is outside the allowed image directories"):
        store.load_vmm_sync(_vmm_target(outside, _sum(KERNEL)))


def test_missing_file_and_relative_path(image_dir: Path) -> None:
    _refused(ImageStore([image_dir]), _target(image_dir / "absent"), "does not exist")
    store = ImageStore([image_dir])
    with pytest.raises(ImageRefusedError, match="not an absolute path"):
        store.load_sync(
            TargetHost.model_construct(
                version="2", kernel="vmlinuz", checksum=_sum(KERNEL), cmdline="", initrd=None, qemu=None
            )
        )


def test_hashing_runs_off_the_event_loop_and_once_per_file_version(
    image_dir: Path, kernel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ImageStore([image_dir])
    threads: list[int] = []
    real_hash = store._hash

    def counting_hash(*args: object) -> bytes:
        threads.append(threading.get_ident())
        return real_hash(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_hash", counting_hash)

    async def passes(n: int) -> int:
        loop_thread = threading.get_ident()
        for _ in range(n):
            await store.load(_target(kernel))
        assert loop_thread not in threads
        return len(threads)

    assert asyncio.run(passes(5)) == 1  # five passes, one read
    new = b"another kernel\n" * 64
    kernel.write_bytes(new)
    os.utime(kernel, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # a new version even on a coarse clock
    with pytest.raises(ImageRefusedError, match="does not match"):
        asyncio.run(store.load(_target(kernel)))
    assert asyncio.run(store.load(_target(kernel, _sum(new)))).sha256 == hashlib.sha256(new).digest()
    assert len(threads) == 2  # the changed file was read again, once


def test_the_event_loop_keeps_running_while_a_large_image_is_hashed(image_dir: Path) -> None:
    big = image_dir / "big"
    data = os.urandom(1 << 20) * 48
    big.write_bytes(data)
    store = ImageStore([image_dir])

    async def run() -> int:
        ticks = 0
        task = asyncio.create_task(store.load(_target(big, _sum(data))))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0)
        await task
        return ticks

    assert asyncio.run(run()) > 1


def test_the_runtime_reports_a_refusal_as_a_preflight_error(tmp_path: Path, image_dir: Path) -> None:
    create_sim_node(tmp_path, "n1", SimNodeSpec(cpus=4, memory_blocks=16, sim_vms=0))
    rt = open_sim_node(tmp_path, "n1", images=ImageStore([image_dir]))
    with pytest.raises(PreflightError, match=r"target image refused on n1: spec.target.kernel /dev/zero .* outside"):
        asyncio.run(rt.image(_target("/dev/zero")))


def test_agent_flags_set_the_allowed_directories_and_the_bound(tmp_path: Path) -> None:
    node = ["--node=n1", f"--sysfs-root={tmp_path}"]
    assert parse_args(node).image_dir == list(DEFAULT_IMAGE_DIRS)
    dirs = ["--image-dir", "/srv/a", "--image-dir=/srv/b"]
    args = parse_args([*node, *dirs, "--max-image-bytes", "4096"])
    assert args.image_dir == [Path("/srv/a"), Path("/srv/b")] and args.max_image_bytes == 4096
    for bad in (["--image-dir", "images"], ["--max-image-bytes", "0"]):
        with pytest.raises(SystemExit):
            parse_args([*node, *bad])


def test_every_node_of_an_agent_process_shares_one_image_store(tmp_path: Path) -> None:
    dirs = ["--image-dir", "/srv/a", "--image-dir=/srv/b"]
    args = sim_agent.parse_args(
        ["--sim-root", str(tmp_path), "--sim-nodes", "n1,n2", *dirs, "--max-image-bytes", "4096"]
    )
    runtimes = sim_agent.build_runtimes(args)
    assert [rt.images.dirs for rt in runtimes] == [(Path("/srv/a"), Path("/srv/b"))] * 2
    assert runtimes[0].images is runtimes[1].images  # one checksum cache for the process
    assert runtimes[0].images.max_bytes == 4096


@pytest.mark.parametrize(
    "cmdline", ["init=/bin/sh", "quiet lockdown=none", "module.sig_enforce=0 console=ttyS0", "rdinit=/x"]
)
def test_a_kernel_parameter_the_administrator_did_not_allow_is_refused(
    image_dir: Path, kernel: Path, cmdline: str
) -> None:
    target = TargetHost(version="2", kernel=str(kernel), checksum=_sum(KERNEL), cmdline=cmdline)
    refused = " ".join(t for t in cmdline.split() if t.split("=")[0] not in ("quiet", "console"))
    _refused(ImageStore([image_dir]), target, f"spec.target.cmdline: {refused} not allowed", "agent.kernelParams")


def test_allowed_kernel_parameters_pass_by_name_and_an_empty_list_allows_none(image_dir: Path, kernel: Path) -> None:
    target = TargetHost(
        version="2", kernel=str(kernel), checksum=_sum(KERNEL), cmdline="console=ttyS0 quiet root=/dev/vda"
    )
    assert asyncio.run(ImageStore([image_dir]).load(target)).cmdline == "console=ttyS0 quiet root=/dev/vda"
    _refused(ImageStore([image_dir], kernel_params=()), target, "allowed parameters: none")
    mine = TargetHost(version="2", kernel=str(kernel), checksum=_sum(KERNEL), cmdline="kvm.nx_huge_pages=off")
    assert asyncio.run(ImageStore([image_dir], kernel_params=["kvm.nx_huge_pages"]).load(mine)).cmdline


def test_the_kernel_param_flag_replaces_the_default_and_rejects_a_non_name(tmp_path: Path) -> None:
    base = ["--node=n1", f"--sysfs-root={tmp_path}"]
    assert parse_args(base).kernel_param == list(images_module.DEFAULT_KERNEL_PARAMS)
    assert parse_args([*base, "--kernel-param=quiet"]).kernel_param == ["quiet"]
    assert parse_args([*base, "--kernel-param="]).kernel_param == []
    with pytest.raises(SystemExit):
        parse_args([*base, "--kernel-param=init=/bin/sh"])
