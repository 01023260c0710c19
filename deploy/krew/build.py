"""Build the kubectl plugin's krew archive and render its manifest (``make plugin``).

Writes into DIST (default ``dist/``):

- ``kubectl-hostrefresh``: a Python zip application (``#!/usr/bin/env python3``) holding the modules of the
  ``hostrefresh`` package that the plugin imports (the static import closure of ``hostrefresh.cli.main``,
  nothing else) and a ``__main__`` that checks the interpreter and the third-party packages first;
- ``kubectl-hostrefresh.tar.gz``: that file (mode 0755) and ``LICENSE``, the archive krew installs;
- ``hostrefresh.yaml``: ``deploy/krew/hostrefresh.yaml`` rendered with the package version, the archive's
  sha256, and the homepage and download URL made from ``--base-url``.

The plugin's third-party dependencies are not bundled: pydantic (pydantic-core), matplotlib (numpy,
kiwisolver, Pillow; optional, only `timeline` pictures load it) and lightkube's msgspec are compiled, and a zip application cannot carry compiled
modules portably, so the machine's Python provides them. Their requirements are read from
``pyproject.toml``; the build fails when the plugin imports a package that is not listed in
``IMPORT_TO_DISTRIBUTION``, so that list cannot fall behind the code.

Everything is written reproducibly (sorted entries, fixed timestamps, no owner names): the same source
gives the same sha256. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import re
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
TEMPLATE = Path(__file__).resolve().parent / "hostrefresh.yaml"
ENTRY = "hostrefresh.cli.main"
BINARY = "kubectl-hostrefresh"
ARCHIVE = f"{BINARY}.tar.gz"
#: Default base URL (the project's home); `make plugin PLUGIN_BASE_URL=...` overrides it.
DEFAULT_BASE_URL = "https://github.com/hostrefresh/hostrefresh"
#: Top-level modules the plugin's code imports -> the distribution (in pyproject.toml's dependencies) that
#: provides them. httpx2 comes with lightkube (its HTTP client), which the plugin configures directly.
IMPORT_TO_DISTRIBUTION = {
    "httpx2": "lightkube",
    "lightkube": "lightkube",
    "matplotlib": "matplotlib",
    "pydantic": "pydantic",
    "rich": "rich",
    "yaml": "pyyaml",
}
#: Distributions the plugin loads only for one verb (matplotlib: `timeline` pictures); not checked at start.
OPTIONAL = {"matplotlib"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

MAIN = '''"""kubectl-hostrefresh: the hostrefresh kubectl plugin as a Python zip application (built by `make plugin`)."""

import importlib.util
import sys

REQUIREMENTS = {requirements!r}

if sys.version_info < (3, 11):
    sys.exit(f"kubectl-hostrefresh needs Python 3.11 or newer; python3 here is {{sys.version.split()[0]}} ({{sys.executable}})")
_missing = sorted({{req for module, req in REQUIREMENTS.items() if importlib.util.find_spec(module) is None}})
if _missing:
    _quoted = " ".join(repr(req) for req in _missing)
    sys.exit(
        f"kubectl-hostrefresh needs Python packages that {{sys.executable}} cannot import: {{', '.join(_missing)}}\\n"
        f"install them for that interpreter: {{sys.executable}} -m pip install {{_quoted}}"
    )

from hostrefresh.cli.main import main  # noqa: E402

sys.exit(main())
'''


class BuildError(Exception):
    """The plugin cannot be built as asked."""


def module_file(module: str) -> Path | None:
    """The source file of a ``hostrefresh`` module or package, None when there is none."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything ``module`` (at ``path``) imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            names.add(source)
            # `from pkg import sub` may name a submodule: follow it when it is one.
            names.update(f"{source}.{alias.name}" for alias in node.names if module_file(f"{source}.{alias.name}"))
    return names


def closure(entry: str = ENTRY) -> tuple[dict[str, Path], set[str]]:
    """The ``hostrefresh`` modules ``entry`` imports, directly or not (with every parent package), and the
    top-level names of the other modules they import (stdlib excluded)."""
    found: dict[str, Path] = {}
    external: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in found:
            continue
        path = module_file(module)
        if path is None:
            raise BuildError(f"{module} is imported by the plugin but has no source file under {SRC}")
        found[module] = path
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        for imported in _imports(path, module):
            top = imported.split(".")[0]
            if top == "hostrefresh":
                # `from hostrefresh.x import name` names a module or an attribute: keep the longest module.
                name = imported
                while name and module_file(name) is None:
                    name = name.rpartition(".")[0]
                todo.append(name)
            elif top != "__future__" and top not in sys.stdlib_module_names:
                external.add(top)
    return found, external


def requirements(external: set[str]) -> dict[str, str]:
    """Import name -> requirement (as pyproject.toml states it) for each third-party package the plugin imports."""
    unknown = sorted(external - IMPORT_TO_DISTRIBUTION.keys())
    if unknown:
        raise BuildError(
            f"the plugin imports {', '.join(unknown)}, which deploy/krew/build.py does not know: add them to "
            "IMPORT_TO_DISTRIBUTION (and to the manifest's caveats)"
        )
    declared, _ = _declared()
    out: dict[str, str] = {}
    for module in sorted(external):
        dist = IMPORT_TO_DISTRIBUTION[module]
        if dist in OPTIONAL:
            continue  # loaded only by the verb that needs it, which names the extra when it is missing
        if dist not in declared:
            raise BuildError(f"{module} comes from {dist}, which pyproject.toml's dependencies do not list")
        out[module] = declared[dist]
    return out


def optional_requirements(external: set[str]) -> dict[str, str]:
    """Import name -> requirement (from pyproject.toml's extras) of what the plugin loads only on demand."""
    _, extras = _declared()
    out: dict[str, str] = {}
    for module in sorted(external):
        dist = IMPORT_TO_DISTRIBUTION.get(module, "")
        if dist in OPTIONAL:
            if dist not in extras:
                raise BuildError(f"{module} comes from {dist}, which pyproject.toml's extras do not list")
            out[module] = extras[dist]
    return out


def _declared() -> tuple[dict[str, str], dict[str, str]]:
    """Distribution -> requirement, for pyproject.toml's dependencies and for its extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def by_dist(reqs: list[str]) -> dict[str, str]:
        return {re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].lower().replace("_", "-"): req for req in reqs}

    extras = [req for reqs in project.get("optional-dependencies", {}).values() for req in reqs]
    return by_dist(project["dependencies"]), by_dist(extras)


def package_version() -> str:
    """The package version: hostrefresh.__version__, which must agree with pyproject.toml."""
    match = re.search(r'^__version__ = "([^"]+)"$', (SRC / "hostrefresh" / "__init__.py").read_text(), re.M)
    if match is None:
        raise BuildError("src/hostrefresh/__init__.py sets no __version__")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    if match.group(1) != declared:
        raise BuildError(f"hostrefresh.__version__ {match.group(1)} differs from pyproject.toml's {declared}")
    return match.group(1)


def _zip_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_zipapp(out: Path) -> dict[str, str]:
    """Write the zip application; return the requirements its ``__main__`` checks."""
    modules, external = closure()
    reqs = requirements(external)
    buf = io.BytesIO()
    buf.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buf, "w") as archive:
        _zip_entry(archive, "__main__.py", MAIN.format(requirements=reqs).encode())
        for path in sorted(modules.values()):
            _zip_entry(archive, path.relative_to(SRC).as_posix(), path.read_bytes())
    out.write_bytes(buf.getvalue())
    out.chmod(0o755)
    return reqs


def build_archive(zipapp: Path, out: Path) -> None:
    """The krew archive: the zip application (0755) and LICENSE (0644), reproducibly."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in (
            (BINARY, zipapp.read_bytes(), 0o755),
            ("LICENSE", (REPO / "LICENSE").read_bytes(), 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    with open(out, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        gz.write(raw.getvalue())


def render(
    template: str,
    version: str,
    sha256: str,
    base_url: str,
    reqs: dict[str, str],
    optional: dict[str, str] | None = None,
) -> str:
    """The manifest: the template's ``{{ .Name }}`` fields filled in; every field must be known."""
    tag = f"v{version}"
    fields = {
        "TagName": tag,
        "Sha256": sha256,
        "Homepage": base_url,
        "URI": f"{base_url}/releases/download/{tag}/{ARCHIVE}",
        "Requirements": " ".join(f"'{req}'" for req in sorted(set(reqs.values()))),
        "Optional": " ".join(f"'{req}'" for req in sorted(set((optional or {}).values()))),
    }

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in fields:
            raise BuildError(f"the manifest template names an unknown field {match.group(0)}")
        return fields[match.group(1)]

    body = template.split("\napiVersion:", 1)
    if len(body) != 2:
        raise BuildError("the manifest template has no apiVersion line")
    header = (
        f"# krew manifest of kubectl-hostrefresh {tag}, rendered by `make plugin` (deploy/krew/build.py) from\n"
        f"# deploy/krew/hostrefresh.yaml; sha256 is {ARCHIVE}'s.\n"
    )
    return header + "apiVersion:" + re.sub(r"\{\{\s*\.(\w+)\s*\}\}", fill, body[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="output directory (default: dist/)")
    parser.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help="project URL: the manifest's homepage; the archive's uri is BASE/releases/download/vVERSION/"
        f"{ARCHIVE} (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    base_url: str = args.base_url.rstrip("/")
    if not re.fullmatch(r"https://[^\s/]+(/\S*)?", base_url):
        parser.error(f"--base-url must be an https:// URL, not {args.base_url!r}")
    dist: Path = args.dist
    dist.mkdir(parents=True, exist_ok=True)
    try:
        version = package_version()
        reqs = build_zipapp(dist / BINARY)
        build_archive(dist / BINARY, dist / ARCHIVE)
        sha256 = hashlib.sha256((dist / ARCHIVE).read_bytes()).hexdigest()
        optional = optional_requirements(closure()[1])
        manifest = render(TEMPLATE.read_text(), version, sha256, base_url, reqs, optional)
    except BuildError as exc:
        print(f"make plugin: {exc}", file=sys.stderr)
        return 1
    (dist / "hostrefresh.yaml").write_text(manifest)
    size = (dist / ARCHIVE).stat().st_size
    print(f"{dist / ARCHIVE}: {size} bytes, sha256 {sha256}")
    print(f"{dist / 'hostrefresh.yaml'}: krew manifest of hostrefresh v{version}")
    print(f"install: kubectl krew install --manifest={dist / 'hostrefresh.yaml'} --archive={dist / ARCHIVE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
