"""Only here because setuptools reads `cffi_modules` from setup(), not from pyproject.toml.

Everything else about the distribution lives in pyproject.toml.
"""

from setuptools import setup

setup(cffi_modules=["src/hostrefresh/l0/_build.py:ffibuilder"])
