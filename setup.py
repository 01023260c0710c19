"""Only here because setuptools reads `cffi_modules` from setup(), not from pyproject.toml.

Everything else about the distribution lives in pyproject.toml.
"""

import sys
from pathlib import Path

from setuptools import setup

# cffi runs src/hostrefresh/l0/_build.py in this process, before the package is installed; it finds
# l0module/ through hostrefresh.sourcetree, which must therefore be importable from src/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

setup(cffi_modules=["src/hostrefresh/l0/_build.py:ffibuilder"])
