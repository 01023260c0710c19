"""``make plugin``: the krew archive and its manifest, installed with the real krew and run through kubectl.

The plugin runs on a "machine" that has Python and the plugin's dependencies but not hostrefresh: the
``python3`` on PATH is this interpreter started with ``-S`` (no site: no .pth file, so no editable
install of hostrefresh) and a PYTHONPATH of the site-packages entries without hostrefresh. So every
module the plugin runs comes from the archive, and an archive that lacks one fails here.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import platform
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import hostrefresh
from hostrefresh.api.names import GROUP
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.tools import ensure_krew

REPO = Path(__file__).resolve().parents[2]
BASE_URL = "https://example.org/hostrefresh"
_PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
#: Every requirement pyproject.toml states: its dependencies and its extras.
DECLARED = [*_PROJECT["dependencies"], *(r for reqs in _PROJECT["optional-dependencies"].values() for r in reqs)]


@dataclass(frozen=True)
class Built:
    dist: Path
    archive: Path
    manifest: Path
    output: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.archive.read_bytes()).hexdigest()

    def spec(self) -> dict[str, object]:
        doc = yaml.safe_load(self.manifest.read_text())
        assert isinstance(doc, dict)
        spec = doc["spec"]
        assert isinstance(spec, dict)
        return spec


def make_plugin(dist: Path, base_url: str = BASE_URL) -> Built:
    """``make plugin`` into ``dist``, with this interpreter."""
    result = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(REPO),
            "plugin",
            f"PYTHON={sys.executable}",
            f"DIST={dist}",
            f"PLUGIN_BASE_URL={base_url}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return Built(dist, dist / "kubectl-hostrefresh.tar.gz", dist / "hostrefresh.yaml", result.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return make_plugin(tmp_path_factory.mktemp("dist"))


def machine_python(tmp: Path) -> tuple[Path, Path]:
    """A ``python3`` (in the returned bin dir) that can import the dependencies but not hostrefresh, and the
    directory its PYTHONPATH names: links to every site-packages entry except hostrefresh's."""
    site_dir, bin_dir = tmp / "site", tmp / "bin"
    site_dir.mkdir(parents=True)
    bin_dir.mkdir()
    for packages in [*site.getsitepackages(), site.getusersitepackages()]:
        if not Path(packages).is_dir():
            continue
        for entry in Path(packages).iterdir():
            link = site_dir / entry.name
            if entry.name.startswith(("hostrefresh", "__editable__")) or entry.suffix == ".pth" or link.exists():
                continue
            link.symlink_to(entry)
    python = bin_dir / "python3"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    return bin_dir, site_dir


def test_archive_holds_the_zipapp_and_license(built: Built) -> None:
    with tarfile.open(built.archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["LICENSE", "kubectl-hostrefresh"]
        assert members["kubectl-hostrefresh"].mode & 0o111 == 0o111
        binary = tar.extractfile("kubectl-hostrefresh")
        license_ = tar.extractfile("LICENSE")
        assert binary is not None and license_ is not None
        data = binary.read()
        assert license_.read() == (REPO / "LICENSE").read_bytes()
    assert data.startswith(b"#!/usr/bin/env python3\n")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "__main__.py" in names
    assert "hostrefresh/cli/main.py" in names
    # Only what the plugin imports: nothing of the operator, the agent, the L0 binding or the simulators.
    assert not [
        n
        for n in names
        if n.startswith(("hostrefresh/operator", "hostrefresh/nodeagent", "hostrefresh/l0", "hostrefresh/sim"))
    ]
    # Every hostrefresh module that importing the plugin loads is in the archive.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hostrefresh.cli.main; print('\\n'.join(m for m in sys.modules if m.startswith('hostrefresh')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(hostrefresh.__file__).parents[1])},
    ).stdout.split()
    for module in loaded:
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, module


def test_manifest_is_rendered_with_the_archives_sha256(built: Built) -> None:
    text = built.manifest.read_text()
    assert "{{" not in text and "REPOSITORY_URL" not in text
    doc = yaml.safe_load(text)
    assert doc["kind"] == "Plugin" and doc["metadata"]["name"] == "hostrefresh"
    spec = built.spec()
    assert spec["version"] == f"v{hostrefresh.__version__}"
    assert spec["homepage"] == BASE_URL
    platforms = spec["platforms"]
    assert isinstance(platforms, list) and len(platforms) == 1
    assert platforms[0]["sha256"] == built.sha256
    assert platforms[0]["uri"] == f"{BASE_URL}/releases/download/v{hostrefresh.__version__}/kubectl-hostrefresh.tar.gz"
    assert platforms[0]["bin"] == "kubectl-hostrefresh"
    # The caveats name the plugin's requirements as pyproject.toml states them.
    caveats = str(spec["caveats"])
    for dist in ("pydantic", "lightkube", "rich", "pyyaml", "matplotlib"):
        (req,) = [r for r in DECLARED if r.lower().startswith(dist)]
        assert f"'{req}'" in caveats
    assert "pictures, also: python3 -m pip install 'matplotlib" in caveats
    assert built.sha256 in built.output


def test_build_is_reproducible_and_takes_the_base_url(built: Built, tmp_path: Path) -> None:
    again = make_plugin(tmp_path / "again", base_url="https://mirror.example.net/tools/hostrefresh/")
    assert again.sha256 == built.sha256
    spec = again.spec()
    assert spec["homepage"] == "https://mirror.example.net/tools/hostrefresh"
    platforms = spec["platforms"]
    assert isinstance(platforms, list)
    assert platforms[0]["uri"].startswith("https://mirror.example.net/tools/hostrefresh/releases/download/v")


def test_build_refuses_a_base_url_that_is_not_https(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(REPO),
            "plugin",
            f"PYTHON={sys.executable}",
            f"DIST={tmp_path}",
            "PLUGIN_BASE_URL=REPOSITORY_URL",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "https://" in result.stderr
    assert not (tmp_path / "hostrefresh.yaml").exists()


def test_without_its_dependencies_the_plugin_says_what_to_install(built: Built, tmp_path: Path) -> None:
    with tarfile.open(built.archive) as tar:
        tar.extract("kubectl-hostrefresh", tmp_path, filter="data")
    result = subprocess.run(
        [sys.executable, "-S", str(tmp_path / "kubectl-hostrefresh"), "version", "--client"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "-m pip install" in result.stderr
    for dist in ("pydantic", "lightkube", "rich", "pyyaml"):
        (req,) = [r for r in DECLARED if r.lower().startswith(dist)]
        assert f"'{req}'" in result.stderr
    assert "matplotlib" not in result.stderr  # optional: only `timeline` pictures load it


@pytest.mark.integration
@pytest.mark.slow
def test_krew_installs_the_archive_and_kubectl_runs_it(built: Built, crds: ControlPlane, tmp_path: Path) -> None:
    krew_bin = ensure_krew().bin_dir
    python_bin, site_dir = machine_python(tmp_path / "machine")
    krew_root, home = tmp_path / "krew", tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{krew_bin}:{krew_root / 'bin'}:{python_bin}:/usr/bin:/bin",
        "HOME": str(home),
        "KREW_ROOT": str(krew_root),
        "KREW_NO_UPGRADE_CHECK": "1",
        "PYTHONPATH": str(site_dir),
        "KUBECONFIG": str(crds.kubeconfig),
    }
    kubectl = str(crds.tools.kubectl)

    def run(*args: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl, *args], env=environ, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )

    # The machine has the dependencies but no hostrefresh of its own.
    probe = subprocess.run(
        [str(python_bin / "python3"), "-c", "import hostrefresh"], env=env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "No module named 'hostrefresh'" in probe.stderr

    # A manifest whose sha256 is not the archive's is refused.
    tampered = tmp_path / "tampered" / "kubectl-hostrefresh.tar.gz"
    tampered.parent.mkdir()
    tampered.write_bytes(built.archive.read_bytes() + gzip.compress(b"x"))
    refused = run("krew", "install", f"--manifest={built.manifest}", f"--archive={tampered}")
    assert refused.returncode != 0
    want, got = built.sha256, hashlib.sha256(tampered.read_bytes()).hexdigest()
    assert f"checksum does not match, want: {want}, got {got}" in refused.stderr
    assert not (krew_root / "bin" / "kubectl-hostrefresh").exists()

    installed = run("krew", "install", f"--manifest={built.manifest}", f"--archive={built.archive}")
    assert installed.returncode == 0, installed.stderr
    assert "Installed plugin: hostrefresh" in installed.stderr
    linked = krew_root / "bin" / "kubectl-hostrefresh"
    assert (
        linked.resolve() == krew_root / "store" / "hostrefresh" / f"v{hostrefresh.__version__}" / "kubectl-hostrefresh"
    )
    assert (linked.resolve().parent / "LICENSE").is_file()

    listed = run("plugin", "list")
    assert listed.returncode == 0, listed.stderr
    assert str(linked) in listed.stdout.split()

    served = crds.kubectl("get", "crd", "-o", "json")
    expected = {
        crd["metadata"]["name"]: [v["name"] for v in crd["spec"]["versions"] if v["served"]]
        for crd in json.loads(served.stdout)["items"]
        if crd["spec"]["group"] == GROUP
    }
    assert len(expected) == 2

    text = run("hostrefresh", "version")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"Client Version: v{hostrefresh.__version__} (python {platform.python_version()})"
    assert sorted(lines[1:]) == sorted(f"Server API {name}: {', '.join(vs)}" for name, vs in expected.items())

    as_json = run("hostrefresh", "version", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data == {
        "clientVersion": {"version": hostrefresh.__version__, "python": platform.python_version()},
        "serverAPI": expected,
    }

    # The same plugin with an unreachable cluster: the plugin's own exit code comes through kubectl.
    dead = tmp_path / "dead.kubeconfig"
    config = crds.kubeconfig.read_text()
    assert crds.url in config
    dead.write_text(config.replace(crds.url, "https://127.0.0.1:9"))
    unreachable = run("hostrefresh", "version", environ={**env, "KUBECONFIG": str(dead)})
    assert unreachable.returncode == 5, unreachable.stderr


def test_build_refuses_a_dependency_it_does_not_know() -> None:
    spec = importlib.util.spec_from_file_location("krew_build", REPO / "deploy" / "krew" / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    with pytest.raises(build.BuildError, match="kopf"):
        build.requirements({"pydantic", "kopf"})
    (lightkube,) = [r for r in DECLARED if r.startswith("lightkube")]
    (pyyaml,) = [r for r in DECLARED if r.lower().startswith("pyyaml")]
    assert build.requirements({"httpx2", "yaml"}) == {"httpx2": lightkube, "yaml": pyyaml}
    # What the plugin's modules import outside hostrefresh and the standard library, read from their source.
    modules, external = build.closure()
    assert "hostrefresh.cli.main" in modules and "hostrefresh.operator" not in modules
    assert {"pydantic", "lightkube", "rich", "yaml", "matplotlib"} <= external
