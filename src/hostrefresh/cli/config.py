"""Kubeconfig handling as kubectl does it: ``--kubeconfig``, else ``$KUBECONFIG`` (several files merged,
the first to define a name wins), else ``~/.kube/config``, else the pod's service account;
``--context`` picks a context."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx2
import yaml
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig

from hostrefresh.cli.errors import CliError, Exit

FIELD_MANAGER = "kubectl-hostrefresh"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
#: Keys holding file paths, relative to the kubeconfig file that names them.
_PATH_KEYS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


def kubeconfig_files(explicit: Path | None) -> list[Path]:
    """The files to read, in precedence order (missing ones in $KUBECONFIG are skipped, like kubectl)."""
    if explicit is not None:
        if not explicit.exists():
            raise CliError(
                f"kubeconfig {explicit} does not exist", "pass an existing file to --kubeconfig", Exit.NO_CLUSTER
            )
        return [explicit]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p and Path(p).exists()]
    default = Path.home() / ".kube" / "config"
    return [default] if default.exists() else []


def _absolute(entry: dict[str, Any], section: str, base: Path) -> dict[str, Any]:
    inner = dict(entry.get(section) or {})
    for key in _PATH_KEYS.get(section, ()):
        value = inner.get(key)
        if value and not os.path.isabs(value):
            inner[key] = str(base / value)
    return {**entry, section: inner}


def merge(files: list[Path]) -> dict[str, Any]:
    """One kubeconfig from several: entries by name and current-context, the first file to set one wins."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []}
    seen: dict[str, set[str]] = {"clusters": set(), "contexts": set(), "users": set()}
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"cannot read kubeconfig {path}: {exc}", "fix or remove the file", Exit.NO_CLUSTER) from None
        base = path.resolve().parent
        if not merged.get("current-context") and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for plural, singular in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
            for entry in doc.get(plural) or []:
                name = entry.get("name")
                if name and name not in seen[plural]:
                    seen[plural].add(name)
                    merged[plural].append(_absolute(entry, singular, base))
    return merged


def load(explicit: Path | None, context: str | None) -> KubeConfig:
    """The kubeconfig to use, with ``context`` (when given) as the current context."""
    files = kubeconfig_files(explicit)
    if not files:
        if SERVICE_ACCOUNT_TOKEN.exists():
            return KubeConfig.from_service_account()
        raise CliError(
            "no kubeconfig found",
            "pass --kubeconfig FILE, set $KUBECONFIG, or create ~/.kube/config (kubectl config view shows it)",
            Exit.NO_CLUSTER,
        )
    conf = merge(files)
    names = [c["name"] for c in conf["contexts"]]
    if context is not None:
        if context not in names:
            raise CliError(
                f"context {context!r} is not in the kubeconfig",
                f"use one of: {', '.join(names) or '(none)'} (kubectl config get-contexts)",
                Exit.NO_CLUSTER,
            )
        conf["current-context"] = context
    if not conf.get("current-context"):
        raise CliError(
            "the kubeconfig has no current context",
            f"pass --context (one of: {', '.join(names) or 'none'}) or run kubectl config use-context",
            Exit.NO_CLUSTER,
        )
    return KubeConfig.from_dict(conf)


def client(explicit: Path | None, context: str | None, request_timeout: float | None = None) -> Client:
    """A blocking API client for the chosen kubeconfig and context. ``request_timeout``: seconds one
    request may take (0: no limit, as kubectl's --request-timeout; None: the client's default)."""
    timeout = None if request_timeout is None else httpx2.Timeout(request_timeout or None)
    return Client(config=load(explicit, context), field_manager=FIELD_MANAGER, timeout=timeout)
