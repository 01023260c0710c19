"""cffi API-mode builder for ``hostrefresh.l0._l0_cffi``.

The cdef is cut out of ``l0module/include/l0.h`` (between the L0_CDEF markers)
so the header stays the one definition of the ABI; every ``#define X value``
becomes ``#define X ...`` and cffi reads the value from the compiled header.
The extension compiles the same C sources the Makefile and C tests use, so it is built from the
source checkout (``hostrefresh.sourcetree``; ``setup.py`` makes that importable while pip builds).
"""

from __future__ import annotations

import re

from cffi import FFI  # type: ignore[import-untyped,unused-ignore]  # no stubs in [test]

from hostrefresh.sourcetree import source_tree

ROOT = source_tree("l0module")
L0MODULE = ROOT / "l0module"
HEADER = L0MODULE / "include" / "l0.h"
SOURCES = sorted((L0MODULE / "src").glob("*.c"))

_DEFINE = re.compile(r"^#define\s+(\w+)\s+.*$", re.MULTILINE)


def cdef_from_header(text: str) -> str:
    """Return the cffi-parseable region of the header, defines made opaque."""
    start = text.index("/* L0_CDEF_BEGIN */")
    end = text.index("/* L0_CDEF_END */")
    return _DEFINE.sub(r"#define \1 ...", text[start:end])


ffibuilder = FFI()
ffibuilder.cdef(cdef_from_header(HEADER.read_text()))
ffibuilder.set_source(
    "hostrefresh.l0._l0_cffi",
    '#include "l0.h"',
    sources=[str(p.relative_to(ROOT)) for p in SOURCES],
    include_dirs=[str((L0MODULE / "include").relative_to(ROOT))],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(ROOT / "build" / "cffi"), verbose=True)
