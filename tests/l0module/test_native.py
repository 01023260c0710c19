"""The C side in the one test command: unit tests under ASan/UBSan, the built extension, the vmcall backend."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import hostrefresh.l0._l0_cffi as ext
import pytest

from hostrefresh.l0 import Backend, Image, L0Error, MemRange, NoL0Error, open_l0
from hostrefresh.l0 import _binding as b

from .conftest import L0MODULE, ROOT


@pytest.mark.slow
def test_c_unit_tests_under_asan_ubsan(tmp_path: Path) -> None:
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.fail("make and gcc are required to build the C tests")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        ["make", "-C", str(L0MODULE), f"BUILD={tmp_path / 'build'}", "test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    m = re.search(r"l0 C tests: (\d+) passed, (\d+) failed", out)
    assert m and int(m[1]) > 250 and m[2] == "0", out
    assert "-fsanitize=address,undefined" in out


def test_extension_imports_from_elsewhere(tmp_path: Path) -> None:
    """The editable install must find the compiled module without the repo on sys.path."""
    proc = subprocess.run(
        [sys.executable, "-c", "import hostrefresh.l0._l0_cffi as m; print(m.lib.L0_ABI_VERSION)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == b.L0_ABI_VERSION


def test_vmcall_without_l0_fails_cleanly() -> None:
    """This machine has no hostrefresh L0: probe says so, every call raises NoL0Error."""
    with open_l0("vmcall") as l0:
        info = l0.probe()
        if info.present:
            pytest.skip("a real hostrefresh L0 is present")
        assert info.backend is Backend.VMCALL and not info.compatible
        calls: list[Callable[[], object]] = [
            l0.query,
            lambda: l0.partition_create([1], [MemRange(0, 2 << 20)]),
            lambda: l0.partition_destroy(2),
            l0.nested_enable,
            l0.nested_disable,
            lambda: l0.l1_boot(2, Image("k", bytes(32))),
            lambda: l0.mem_grant(1, 2),
            lambda: l0.l1_retire(1, 2),
            lambda: l0.l1_stop(2),
        ]
        for call in calls:
            with pytest.raises(NoL0Error, match="no L0 present"):
                call()
        with pytest.raises(L0Error, match="only in the simulated L0"):
            l0.sim_clear_faults()


def test_vmcall_probe_runs_in_a_child_process() -> None:
    """A probe must never execute VMCALL blindly: a SIGILL would kill this child."""
    code = "from hostrefresh.l0 import open_l0; print(open_l0('vmcall').probe().present)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in {"True", "False"}


def test_header_and_build_agree() -> None:
    """The cdef is cut from the header: every #define there is a constant of the module."""
    header = (L0MODULE / "include" / "l0.h").read_text()
    region = header[header.index("L0_CDEF_BEGIN") : header.index("L0_CDEF_END")]
    for name in re.findall(r"^#define\s+(L0_\w+)", region, re.MULTILINE):
        assert hasattr(ext.lib, name), name
        assert getattr(b, name) == getattr(ext.lib, name), f"the thin layer lacks {name}"
    assert (ROOT / "src" / "hostrefresh" / "l0" / "_build.py").exists()
