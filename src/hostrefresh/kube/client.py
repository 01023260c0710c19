"""Build lightkube clients from a kubeconfig, the pod's service account, or the environment."""

from __future__ import annotations

import os
from pathlib import Path

from lightkube import AsyncClient, Client
from lightkube.config.kubeconfig import KubeConfig


def load_config(kubeconfig: str | Path | None = None) -> KubeConfig:
    """Explicit path, else $KUBECONFIG, else in-cluster service account, else ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return KubeConfig.from_file(str(path))
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        return KubeConfig.from_service_account()
    return KubeConfig.from_file(str(Path.home() / ".kube" / "config"))


def async_client(kubeconfig: str | Path | None = None, field_manager: str = "hostrefresh") -> AsyncClient:
    """One async client per process; its connection pool is shared by everything in the process."""
    return AsyncClient(config=load_config(kubeconfig), field_manager=field_manager)


def sync_client(kubeconfig: str | Path | None = None, field_manager: str = "hostrefresh") -> Client:
    """A blocking client, for the CLI and tests."""
    return Client(config=load_config(kubeconfig), field_manager=field_manager)
