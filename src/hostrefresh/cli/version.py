"""``version``: the plugin's version and which hostrefresh.io API versions the cluster serves."""

from __future__ import annotations

import argparse
import platform
from typing import Any

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from rich.console import Console

import hostrefresh
from hostrefresh.api import GROUP, HostRefresh, RefreshPlan
from hostrefresh.cli.errors import Exit
from hostrefresh.cli.fetch import api_errors
from hostrefresh.cli.output import dump

CRDS = tuple(f"{kind.PLURAL}.{GROUP}" for kind in (HostRefresh, RefreshPlan))


def served(client: Client) -> dict[str, list[str] | None]:
    """Served versions of each CRD (None: not installed)."""
    out: dict[str, list[str] | None] = {}
    for name in CRDS:
        with api_errors(f"reading CustomResourceDefinition {name}"):
            try:
                crd = client.get(CustomResourceDefinition, name)
            except ApiError as exc:
                if exc.status.code == 404:
                    out[name] = None
                    continue
                raise
        out[name] = [v.name for v in crd.spec.versions if v.served]
    return out


def cmd_version(client_factory: Any, args: argparse.Namespace, out: Console) -> int:
    data: dict[str, Any] = {"clientVersion": {"version": hostrefresh.__version__, "python": platform.python_version()}}
    if not args.client:
        data["serverAPI"] = served(client_factory())
    if args.output in ("json", "yaml"):
        out.print(dump(data, args.output), end="", markup=False)
        return Exit.OK
    out.print(f"Client Version: v{hostrefresh.__version__} (python {platform.python_version()})", markup=False)
    for name, versions in (data.get("serverAPI") or {}).items():
        shown = ", ".join(versions) if versions else "not installed (kubectl apply -f crds/)"
        out.print(f"Server API {name}: {shown}", markup=False)
    return Exit.OK
