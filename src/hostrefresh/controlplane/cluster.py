"""Start and stop etcd + kube-apiserver on loopback, like controller-runtime's envtest.

RBAC authorization, client-certificate authentication and the default admission plugins (which
include ValidatingAdmissionPolicy) are on. The ServiceAccount admission plugin is off, as in envtest:
no controller-manager runs to create tokens, but TokenRequest (pod-bound tokens) works. No
controllers run at all: no garbage collection, namespaces stay Terminating.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from hostrefresh.api.crd import render_all
from hostrefresh.controlplane.pki import ControlPlanePKI, KeyPair, write_pki
from hostrefresh.controlplane.tools import Toolset, ensure_tools

STATE_FILE = "controlplane.json"
#: The Go garbage collector's target for etcd and kube-apiserver (GOGC) unless $GOGC says otherwise.
#: Go's default (100) collects whenever the heap doubles: kube-apiserver then spends about a sixth
#: of its CPU on collection. A development machine has memory to spare and few cores, which it
#: shares with the operator, the agents and the tests; 400 (heap up to five times the live data, a
#: few hundred MB here) gives most of that CPU back.
GO_GC_PERCENT = 400


def free_port() -> int:
    """A free TCP port on loopback (the kernel picks; the tiny race is acceptable for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ControlPlane:
    """One local control plane in its own data directory."""

    def __init__(
        self,
        workdir: Path | None = None,
        tools: Toolset | None = None,
        extra_args: list[str] | None = None,
        detached: bool = False,
    ) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hostrefresh-cp-"))
        # Attached (the default), etcd and kube-apiserver die with the process that started them,
        # even if it is SIGKILLed and no cleanup runs; detached ones (``cluster-up``) outlive it.
        self.detached = detached
        self._tools = tools
        self.extra_args = list(extra_args or [])  # appended to kube-apiserver's flags (e.g. audit logging)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}  # as spawned, so that ``crash_restart`` can start it again
        self.pki: ControlPlanePKI | None = None
        self.port = 0
        self.kubeconfig = self.workdir / "admin.kubeconfig"

    @property
    def tools(self) -> Toolset:
        if self._tools is None:
            self._tools = ensure_tools()
        return self._tools

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0, extra_args: list[str] | None = None) -> None:
        """Start etcd and kube-apiserver and wait until /readyz answers 200.

        ``extra_args`` (and those given to the constructor) are appended to kube-apiserver's flags.
        """
        tools = self.tools
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = write_pki(self.workdir / "pki")
        etcd_port, peer_port, self.port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                str(tools.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                str(tools.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={pki.directory}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer={self.url}/",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=0",
                *self.extra_args,
                *(extra_args or []),
            ],
        )
        self.kubeconfig.write_text(self.kubeconfig_text(pki.admin, "admin"))
        self._write_state()
        self._wait_ready(timeout)

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._argv[name] = list(argv)
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        if not self.detached and shutil.which("setpriv"):
            # util-linux: set PR_SET_PDEATHSIG, then exec (no preexec_fn, which is unsafe with threads).
            argv = ["setpriv", "--pdeathsig", "TERM", "--", *argv]
        env = {"GOGC": str(GO_GC_PERCENT), **os.environ}
        self._procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )
        log.close()

    def _wait_ready(self, timeout: float) -> None:
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        admin_dir = self.workdir / "pki"
        (admin_dir / "admin.crt").write_bytes(self.pki.admin.cert_pem)
        (admin_dir / "admin.key").write_bytes(self.pki.admin.key_pem)
        ctx.load_cert_chain(str(admin_dir / "admin.crt"), str(admin_dir / "admin.key"))
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.workdir / (name + '.log')}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"kube-apiserver not ready after {timeout:.0f}s ({last_error}); see {self.workdir}")

    def crash_restart(self, component: str, down_seconds: float = 0.0, timeout: float = 120.0) -> None:
        """SIGKILL ``component`` (etcd or kube-apiserver), keep it down, start it again, wait until ready.

        Fault injection for the fault campaign: same flags, ports and data directory, as a systemd
        restart of a crashed control-plane process would do. Call it from the thread that started
        the control plane's other work (normally the main thread): an attached component dies with
        the thread that spawned it (PR_SET_PDEATHSIG, see ``_spawn``).
        """
        proc = self._procs.pop(component)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        time.sleep(down_seconds)
        argv = self._argv[component]
        if argv[0] == "setpriv":  # _spawn adds it again
            argv = argv[argv.index("--") + 1 :]
        self._spawn(component, argv)
        self._write_state()
        self._wait_ready(timeout)

    def pids(self) -> dict[str, int]:
        """Process ids of the running components (for resource accounting in benches)."""
        return {name: proc.pid for name, proc in self._procs.items() if proc.poll() is None}

    def stop(self, grace: float = 15.0) -> None:
        """Stop the API server, then etcd; kill whatever does not exit within ``grace`` seconds."""
        for name in ("kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        state = self.workdir / STATE_FILE
        if state.exists():
            state.unlink()

    # -- state for `make cluster-up` / `cluster-down` -------------------------------------------

    def _write_state(self) -> None:
        state = {
            "pids": {name: proc.pid for name, proc in self._procs.items()},
            "binaries": {"etcd": str(self.tools.etcd), "kube-apiserver": str(self.tools.kube_apiserver)},
            "port": self.port,
            "kubeconfig": str(self.kubeconfig),
        }
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2))

    @staticmethod
    def stop_detached(workdir: Path, grace: float = 15.0) -> bool:
        """Stop a control plane started by another process (``cluster-up``); False if none ran."""
        state_path = workdir / STATE_FILE
        if not state_path.exists():
            return False
        state = json.loads(state_path.read_text())
        for name in ("kube-apiserver", "etcd"):
            pid = state["pids"].get(name)
            if pid is None or not _is_our_process(pid, state["binaries"][name]):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _is_our_process(pid, state["binaries"][name]):
                time.sleep(0.1)
            if _is_our_process(pid, state["binaries"][name]):
                os.kill(pid, signal.SIGKILL)
        state_path.unlink()
        return True

    def install_crds(self, namespace: str | None = None) -> None:
        """Apply the CRDs, wait until they are Established, and create ``namespace``.

        The CRDs are rendered from the API models, the same YAML as the committed ``crds/`` (a test keeps
        those current), so no source checkout is needed.
        """
        self.kubectl("apply", "-f", "-", stdin="---\n".join(render_all().values()))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        if namespace and not self.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").stdout:
            self.kubectl("create", "namespace", namespace)

    # -- clients ----------------------------------------------------------------------------------

    def kubeconfig_text(self, creds: KeyPair | None, user: str, token: str | None = None) -> str:
        """A kubeconfig for this server with a client certificate or a bearer token."""
        assert self.pki is not None
        user_entry: dict[str, Any] = {}
        if creds is not None:
            user_entry = {
                "client-certificate-data": _b64(creds.cert_pem),
                "client-key-data": _b64(creds.key_pem),
            }
        if token is not None:
            user_entry = {"token": token}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "hostrefresh-local",
                    "cluster": {"server": self.url, "certificate-authority-data": _b64(self.pki.ca.cert_pem)},
                }
            ],
            "users": [{"name": user, "user": user_entry}],
            "contexts": [{"name": user, "context": {"cluster": "hostrefresh-local", "user": user}}],
            "current-context": user,
        }
        return yaml.safe_dump(config, sort_keys=False)

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """Kubeconfig of another identity (client certificate CN=user, O=groups), for RBAC tests."""
        assert self.pki is not None
        path = self.workdir / f"{user.replace(':', '_')}.kubeconfig"
        path.write_text(self.kubeconfig_text(self.pki.ca.issue(user, groups), user))
        return path

    def token_kubeconfig(self, name: str, token: str) -> Path:
        """Kubeconfig that authenticates with a bearer token (e.g. a pod-bound service-account token)."""
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(self.kubeconfig_text(None, name, token=token))
        return path

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this server."""
        # A discovery cache per control plane: kubectl's default cache is keyed on host:port only,
        # and a later control plane on a reused port would see stale API resources.
        cache = self.workdir / "kubectl-cache"
        cmd = [str(self.tools.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", f"--cache-dir={cache}", *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result


def _is_our_process(pid: int, binary: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return cmdline == binary
