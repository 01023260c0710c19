"""Build etcd, kube-apiserver, kubectl and helm from Go modules, once per version set.

The Go wrapper modules live in the repository's top-level ``controlplane/`` directory (their go.mod
files pin the versions in ``versions``). Binaries land in
``$HOSTREFRESH_CACHE_DIR`` (default ``$XDG_CACHE_HOME/hostrefresh`` or ``~/.cache/hostrefresh``)
under a directory named after the versions plus a hash of the go.mod/go.sum files, so a version
change builds anew and anything else reuses the cache. A file lock lets parallel callers
(pytest-xdist workers, two terminals) wait for one build instead of racing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hostrefresh.controlplane import versions
from hostrefresh.sourcetree import source_tree


def go_modules() -> Path:
    """The Go wrapper modules (``controlplane/`` of the source checkout)."""
    return source_tree("controlplane") / "controlplane"


@dataclass(frozen=True)
class BuildTarget:
    """One binary: which wrapper module builds it, from which package, with which version stamp."""

    name: str
    module_dir: str
    package: str
    ldflags: str


def _k8s_ldflags() -> str:
    major, minor = versions.KUBERNETES.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return f"-s -w -X {pkg}.gitVersion={versions.KUBERNETES} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"


TARGETS = (
    BuildTarget("etcd", "etcd", ".", "-s -w"),
    BuildTarget("kube-apiserver", "kube", "./cmd/kube-apiserver", _k8s_ldflags()),
    BuildTarget("kubectl", "kube", "./cmd/kubectl", _k8s_ldflags()),
    BuildTarget(
        "helm",
        "helm",
        "helm.sh/helm/v3/cmd/helm",
        f"-s -w -X helm.sh/helm/v3/internal/version.version={versions.HELM}",
    ),
)


@dataclass(frozen=True)
class Toolset:
    """Paths of the built binaries."""

    bin_dir: Path

    def path(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def etcd(self) -> Path:
        return self.path("etcd")

    @property
    def kube_apiserver(self) -> Path:
        return self.path("kube-apiserver")

    @property
    def kubectl(self) -> Path:
        return self.path("kubectl")

    @property
    def helm(self) -> Path:
        return self.path("helm")

    def complete(self, targets: tuple[BuildTarget, ...] = TARGETS) -> bool:
        return all(os.access(self.path(t.name), os.X_OK) for t in targets) and (self.bin_dir / ".complete").exists()


def cache_root() -> Path:
    """Where hostrefresh caches built tools."""
    explicit = os.environ.get("HOSTREFRESH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hostrefresh"


def _modules_digest(targets: tuple[BuildTarget, ...]) -> str:
    digest = hashlib.sha256()
    modules = go_modules()
    for module in sorted({t.module_dir for t in targets}):
        for name in ("go.mod", "go.sum"):
            digest.update((modules / module / name).read_bytes())
    return digest.hexdigest()[:12]


def cache_key() -> str:
    """Versions plus a hash of the wrapper modules, so any pin change means a new build."""
    tag = f"k8s-{versions.KUBERNETES}_etcd-{versions.ETCD}_helm-{versions.HELM}"
    return f"{tag}_{_modules_digest(TARGETS)}"


def toolset() -> Toolset:
    """The toolset for the pinned versions (built or not)."""
    return Toolset(cache_root() / "controlplane" / cache_key() / "bin")


def _count_packages(target: BuildTarget, env: dict[str, str]) -> int:
    out = subprocess.run(
        ["go", "list", "-deps", target.package],
        cwd=go_modules() / target.module_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return len(out.stdout.split())


def _build_one(target: BuildTarget, out_dir: Path, env: dict[str, str], console: Console) -> None:
    """``go build -v`` the target, turning the package lines it prints into a progress bar."""
    total = _count_packages(target, env)
    cmd = ["go", "build", "-v", "-ldflags", target.ldflags, "-o", str(out_dir / target.name)]
    cmd.append(target.package)
    proc = subprocess.Popen(
        cmd,
        cwd=go_modules() / target.module_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    interactive = console.is_terminal
    with Progress(
        TextColumn(f"[bold]building {target.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not interactive,
    ) as progress:
        task = progress.add_task(target.name, total=total)
        last_report = time.monotonic()
        for done, line in enumerate(proc.stdout, start=1):
            lines.append(line)
            progress.update(task, completed=min(done, total))
            if not interactive and time.monotonic() - last_report > 15:
                console.print(f"building {target.name}: {min(done, total)}/{total} packages compiled")
                last_report = time.monotonic()
    if proc.wait() != 0:
        tail = "".join(lines[-40:])
        raise RuntimeError(f"go build of {target.name} failed (exit {proc.returncode}):\n{tail}")


def _ensure(
    tools: Toolset, targets: tuple[BuildTarget, ...], announce: str, console: Console | None, **env_extra: str
) -> Toolset:
    """Build `targets` into `tools.bin_dir` unless a complete build is there; one builder at a time."""
    if tools.complete(targets):
        return tools
    console = console or Console(stderr=True)
    if shutil.which("go") is None:
        raise RuntimeError("the Go toolchain is needed to build these tools; install Go 1.24+ first")
    tools.bin_dir.mkdir(parents=True, exist_ok=True)
    with open(tools.bin_dir.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tools.complete(targets):  # another process built it while we waited
            return tools
        env = dict(os.environ, GOFLAGS="-mod=readonly", **env_extra)
        started = time.monotonic()
        console.print(f"{announce} into {tools.bin_dir}")
        for target in targets:
            _build_one(target, tools.bin_dir, env, console)
        (tools.bin_dir / ".complete").write_text(f"built in {time.monotonic() - started:.0f}s\n")
        console.print(f"built in {time.monotonic() - started:.0f}s")
    return tools


def ensure_tools(console: Console | None = None) -> Toolset:
    """Return the toolset, building it first if the cache has no complete build of these versions."""
    announce = (
        f"building control plane (kubernetes {versions.KUBERNETES}, etcd {versions.ETCD}, helm {versions.HELM}); "
        "a cold build took about 6 minutes on 2 cores (modules downloaded)"
    )
    return _ensure(toolset(), TARGETS, announce, console)


#: What a kind cluster built here needs beyond the control plane's tools: the node binaries of the same
#: Kubernetes version (for the node image and its component images), kind itself, crictl and CoreDNS.
KIND_TARGETS = (
    *(
        BuildTarget(name, "kubenode", f"./cmd/{name}", _k8s_ldflags())
        for name in ("kubelet", "kubeadm", "kube-proxy", "kube-controller-manager", "kube-scheduler")
    ),
    BuildTarget("kind", "kind", ".", "-s -w"),
    BuildTarget("crictl", "crictl", "sigs.k8s.io/cri-tools/cmd/crictl", "-s -w"),
    BuildTarget("coredns", "coredns", "github.com/coredns/coredns", "-s -w"),
)


def kind_toolset() -> Toolset:
    """Where the kind tools of the pinned versions live (built or not), keyed like the control plane's."""
    tag = f"kind-{versions.KIND}_k8s-{versions.KUBERNETES}_crictl-{versions.CRICTL}_coredns-{versions.COREDNS}"
    key = f"{tag}_{_modules_digest(KIND_TARGETS)}"
    return Toolset(cache_root() / "kind" / key / "bin")


def ensure_kind_tools(console: Console | None = None) -> Toolset:
    """The kind tools, built first if the cache has none of these versions."""
    announce = (
        f"building kind {versions.KIND}, crictl {versions.CRICTL}, CoreDNS {versions.COREDNS} and the node binaries of kubernetes "
        f"{versions.KUBERNETES}; a cold build took about 6 minutes on 2 cores (modules downloaded)"
    )
    # Static binaries: they run in the node image and in images made from it, whatever their C library.
    return _ensure(kind_toolset(), KIND_TARGETS, announce, console, CGO_ENABLED="0")


#: krew, the kubectl plugin manager, named ``kubectl-krew`` so that kubectl finds it as a plugin (``kubectl krew``)
#: when its directory is on PATH. The plugin's test installs ``make plugin``'s archive with it, offline.
KREW_TARGETS = (
    BuildTarget(
        "kubectl-krew",
        "krew",
        "sigs.k8s.io/krew/cmd/krew",
        f"-s -w -X sigs.k8s.io/krew/internal/version.gitTag={versions.KREW}",
    ),
)


def krew_toolset() -> Toolset:
    """Where krew of the pinned version lives (built or not), keyed like the control plane's."""
    return Toolset(cache_root() / "krew" / f"krew-{versions.KREW}_{_modules_digest(KREW_TARGETS)}" / "bin")


def ensure_krew(console: Console | None = None) -> Toolset:
    """krew, built first if the cache has none of this version (the bin dir holds ``kubectl-krew``)."""
    announce = f"building krew {versions.KREW}; a cold build took 30 s on 2 cores (modules downloaded)"
    return _ensure(krew_toolset(), KREW_TARGETS, announce, console)


#: promtool comes from this Debian package (unpacked into the cache, nothing installed): Debian's build
#: tests the chart's alerting rules as well as a Go build of the newest Prometheus did, and costs a
#: download of seconds instead of an 11-minute compile on 2 cores.
PROMTOOL_PACKAGE = "prometheus"


def _debian_candidate(package: str) -> str:
    """The version apt would install (from the local package lists; updated once if they know none)."""
    for attempt in range(2):
        out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            key, _, value = line.strip().partition(":")
            if key == "Candidate" and value.strip() not in ("", "(none)"):
                return value.strip()
        if attempt == 0:
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            subprocess.run([*sudo, "apt-get", "update", "-qq"], capture_output=True, check=False)
    raise RuntimeError(f"apt knows no candidate of the Debian package {package!r}: check the machine's apt sources")


def prometheus_binary_path(binary: str, version: str) -> Path:
    """Where ``binary`` (promtool or prometheus) of Debian's ``prometheus`` package ``version`` lives."""
    safe = version.replace(":", "_").replace("+", "_").replace("~", "_")
    return cache_root() / binary / f"debian-{safe}" / "bin" / binary


def promtool_path(version: str) -> Path:
    """Where promtool of Debian's ``prometheus`` package ``version`` lives (unpacked or not)."""
    return prometheus_binary_path("promtool", version)


def ensure_promtool(console: Console | None = None) -> Path:
    """promtool from Debian's ``prometheus`` package, unpacked into the cache the first time."""
    return _ensure_from_prometheus_package("promtool", console)


def ensure_prometheus(console: Console | None = None) -> Path:
    """The Prometheus server from the same Debian package: the tests' real query and rule engine for
    the plans' health gates (its API needs none of the web UI's assets)."""
    return _ensure_from_prometheus_package("prometheus", console)


def _ensure_from_prometheus_package(binary: str, console: Console | None) -> Path:
    version = _debian_candidate(PROMTOOL_PACKAGE)
    path = prometheus_binary_path(binary, version)
    done = path.parent / ".complete"
    if os.access(path, os.X_OK) and done.exists():
        return path
    console = console or Console(stderr=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.access(path, os.X_OK) and done.exists():
            return path
        console.print(f"unpacking {binary} from Debian's {PROMTOOL_PACKAGE} {version} into {path.parent}")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            os.chmod(work, 0o755)  # apt's download user must be able to write here
            fetched = subprocess.run(
                ["apt-get", "download", f"{PROMTOOL_PACKAGE}={version}"],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            debs = list(work.glob("*.deb"))
            if fetched.returncode != 0 or not debs:
                raise RuntimeError(f"apt-get download {PROMTOOL_PACKAGE}={version} failed: {fetched.stderr[-2000:]}")
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "root")], check=True, capture_output=True)
            shutil.copy2(work / "root" / "usr" / "bin" / binary, path)
        done.write_text(f"{PROMTOOL_PACKAGE} {version}\n")
    return path


def main() -> None:
    """``python -m hostrefresh.controlplane.tools``: build (or reuse) and print the bin directory."""
    tools = ensure_tools()
    print(tools.bin_dir)
    sys.exit(0)


if __name__ == "__main__":
    main()
