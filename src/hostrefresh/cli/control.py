"""Verbs that change something: ``start``, ``pause``, ``resume``, ``abort``, ``retry``, ``approve``.

They write only ``spec`` fields meant for users (``paused``, ``abort``), create HostRefresh objects,
and set the annotations by which users act on the operator's objects (a retry, an approval);
everything else is the operator's.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from lightkube import Client
from lightkube.types import PatchType
from pydantic import ValidationError
from rich.console import Console

from hostrefresh.api import API_VERSION, FAILED_ENDS, HostRefresh, RefreshScope
from hostrefresh.api.names import APPROVED_WAVE_ANNOTATION, PLAN_LABEL, RETRY_ANNOTATION, RETRY_OF_ANNOTATION
from hostrefresh.cli import fetch
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.model import Obj, refresh_outcome
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource

#: The longest object name (a DNS subdomain).
MAX_NAME = 253

KINDS = {
    "hostrefresh": "refresh",
    "hostrefreshes": "refresh",
    "hrf": "refresh",
    "node": "refresh",
    "refreshplan": "plan",
    "refreshplans": "plan",
    "rplan": "plan",
    "plan": "plan",
}


def target_of(client: Client, words: list[str]) -> fetch.Target:
    """``NAME`` or ``KIND NAME`` (kind: hostrefresh|hrf|node|refreshplan|rplan|plan) or ``KIND/NAME``."""
    if len(words) == 1 and "/" in words[0]:
        words = words[0].split("/", 1)
    if len(words) == 1:
        return fetch.resolve(client, words[0])
    if len(words) == 2 and words[0].lower() in KINDS:
        return fetch.resolve(client, words[1], KINDS[words[0].lower()])
    raise CliError(
        f"expected NAME or KIND NAME, got {' '.join(words)!r}", f"KIND is one of {', '.join(KINDS)}", Exit.USAGE
    )


def _patch_spec(client: Client, target: fetch.Target, spec: dict[str, Any]) -> None:
    resource = RefreshPlanResource if target.kind == "RefreshPlan" else HostRefreshResource
    fetch.write(
        f"patching {target.kind} {target.name}",
        lambda: client.patch(resource, target.name, {"spec": spec}, patch_type=PatchType.MERGE),
    )


def start_name(node: str, version: str) -> str:
    """``start``'s default HostRefresh name: the node and the version, as an object name has to be
    (lowercase letters, digits, '-' and '.'; at most 253 characters). Any version the CRD accepts
    gives one: ``6.12.4+kvm1`` on node ``n1`` is ``n1-6-12-4-kvm1``. Too long, it is cut and given
    8 characters of a hash of both, so that two long ones do not meet."""
    base = re.sub(r"-{2,}", "-", f"{node}-{re.sub(r'[^a-z0-9]+', '-', version.lower())}").strip("-.")
    if len(base) <= MAX_NAME:
        return base
    digest = hashlib.sha256(f"{node}\0{version}".encode()).hexdigest()[:8]
    return f"{base[: MAX_NAME - 9].rstrip('-.')}-{digest}"


def cmd_start(client: Client, args: argparse.Namespace, out: Console) -> int:
    name = args.name or start_name(args.node, args.version)
    needed = ("--qemu", "--qemu-checksum") if args.scope == "vmm" else ("--kernel", "--checksum")
    missing = [flag for flag in needed if getattr(args, flag[2:].replace("-", "_")) is None]
    if missing:
        other = "--scope host with --kernel and --checksum" if args.scope == "vmm" else "--scope vmm with --qemu"
        raise CliError(
            f"a {args.scope} refresh needs {' and '.join(missing)}",
            f"give {' and '.join(missing)}, or use {other}; nothing was created",
            Exit.USAGE,
        )
    target: dict[str, Any] = {"version": args.version}
    spec: dict[str, Any] = {"nodeName": args.node, "target": target}
    if args.scope == "vmm":
        spec["scope"] = RefreshScope.VMM.value
        target["qemu"] = {"binary": args.qemu, "checksum": args.qemu_checksum}
    else:
        target.update({"kernel": args.kernel, "checksum": args.checksum, "cmdline": args.cmdline})
        if args.initrd:
            target["initrd"] = args.initrd
        spec["partition"] = {"cpus": args.cpus, "memory": args.memory}
    body = {"apiVersion": API_VERSION, "kind": HostRefresh.KIND, "metadata": {"name": name}, "spec": spec}
    try:
        HostRefresh.model_validate(body)  # the same rules as the API server, with field names
    except ValidationError as exc:
        raise CliError(
            f"invalid refresh: {exc}", "fix the flags named above; nothing was created", Exit.USAGE
        ) from None
    fetch.write(f"creating HostRefresh {name}", lambda: client.create(HostRefreshResource.from_dict(body)))
    out.print(f"hostrefresh {name} created for node {args.node}", markup=False)
    return Exit.OK


def cmd_pause_resume(client: Client, args: argparse.Namespace, out: Console) -> int:
    target = target_of(client, args.target)
    paused = args.command == "pause"
    _patch_spec(client, target, {"paused": paused})
    effect = {
        ("RefreshPlan", True): "no new node starts; running refreshes finish",
        ("RefreshPlan", False): "new nodes may start again",
        ("HostRefresh", True): "the agent finishes its current step and waits",
        ("HostRefresh", False): "the agent goes on",
    }[(target.kind, paused)]
    out.print(f"{target.kind.lower()} {target.name} {'paused' if paused else 'resumed'}: {effect}", markup=False)
    return Exit.OK


def _active(obj: Obj) -> bool:
    status = obj.get("status") or {}
    return not refresh_outcome(obj).done and status.get("directive") != "RollBack"


def cmd_abort(client: Client, args: argparse.Namespace, out: Console) -> int:
    """A refresh rolls back (before Retiring; after it, it finishes). A plan is paused and its running
    refreshes are aborted."""
    target = target_of(client, args.target)
    if target.kind == "HostRefresh":
        if refresh_outcome(target.obj).done:
            raise CliError(
                f"hostrefresh {target.name} has ended ({target.obj['status'].get('phase')})",
                "nothing to abort",
                Exit.USAGE,
            )
        _patch_spec(client, target, {"abort": True})
        out.print(f"hostrefresh {target.name}: abort requested (rolls back unless past Retiring)", markup=False)
        return Exit.OK
    _patch_spec(client, target, {"paused": True})
    aborted = []
    for child in fetch.list_refreshes(client, target.name):
        if _active(child):
            _patch_spec(client, fetch.Target("HostRefresh", child), {"abort": True})
            aborted.append(child["metadata"]["name"])
    out.print(
        f"refreshplan {target.name} paused; abort requested for {len(aborted)} running refresh(es)"
        + (f": {', '.join(aborted)}" if aborted else ""),
        markup=False,
    )
    return Exit.OK


def _failed(obj: Obj) -> bool:
    return (obj.get("status") or {}).get("phase") in FAILED_ENDS


def _retried(obj: Obj) -> bool:
    return RETRY_ANNOTATION in (obj["metadata"].get("annotations") or {})


def cmd_retry(client: Client, args: argparse.Namespace, out: Console) -> int:
    """Retry failed nodes, keeping each failed refresh as the record of what failed: a plan's failed
    refreshes are marked for retry (the plan starts their nodes again, under new names that say which
    refresh they retry); a standalone failed refresh is created anew as ``<name>-retry-N``."""
    target = target_of(client, args.target)
    if target.kind == "RefreshPlan":
        failed = [c for c in fetch.list_refreshes(client, target.name) if _failed(c) and not _retried(c)]
        if not failed:
            raise CliError(f"refreshplan {target.name} has no failed refresh", "nothing to retry", Exit.USAGE)
        for child in failed:
            _mark_retry(client, child["metadata"]["name"])
        out.print(
            f"refreshplan {target.name}: {len(failed)} node(s) will be retried: "
            + ", ".join(c["spec"]["nodeName"] for c in failed)
            + " (the failed refreshes are kept as the record)",
            markup=False,
        )
        return Exit.OK
    obj = target.obj
    if not _failed(obj):
        raise CliError(
            f"hostrefresh {target.name} has not failed (phase {(obj.get('status') or {}).get('phase', 'Pending')})",
            "only a Failed or RolledBack refresh can be retried",
            Exit.USAGE,
        )
    labels = obj["metadata"].get("labels") or {}
    if PLAN_LABEL in labels:
        if _retried(obj):
            raise CliError(
                f"hostrefresh {target.name} is being retried already",
                f"kubectl hostrefresh get {labels[PLAN_LABEL]} shows the new refresh of its node",
                Exit.USAGE,
            )
        _mark_retry(client, target.name)
        out.print(
            f"hostrefresh {target.name} kept as record: plan {labels[PLAN_LABEL]} retries node "
            f"{obj['spec']['nodeName']}",
            markup=False,
        )
        return Exit.OK
    existing = {o["metadata"]["name"] for o in fetch.list_refreshes(client)}
    base = target.name.split("-retry-")[0]
    n = 1
    while f"{base}-retry-{n}" in existing:
        n += 1
    name = f"{base}-retry-{n}"[:253]
    body = {
        "apiVersion": API_VERSION,
        "kind": HostRefresh.KIND,
        "metadata": {"name": name, "labels": labels, "annotations": {RETRY_OF_ANNOTATION: target.name}},
        "spec": {**obj["spec"], "abort": False, "paused": False},
    }
    fetch.write(f"creating HostRefresh {name}", lambda: client.create(HostRefreshResource.from_dict(body)))
    out.print(
        f"hostrefresh {name} created: retries node {obj['spec']['nodeName']} ({target.name} kept as record)",
        markup=False,
    )
    return Exit.OK


def _mark_retry(client: Client, name: str) -> None:
    """Ask the refresh's plan to refresh its node again (the failed refresh itself stays as it is)."""
    patch = {"metadata": {"annotations": {RETRY_ANNOTATION: datetime.now(UTC).isoformat(timespec="seconds")}}}
    fetch.write(
        f"marking HostRefresh {name} for retry",
        lambda: client.patch(HostRefreshResource, name, patch, patch_type=PatchType.MERGE),
    )


def cmd_approve(client: Client, args: argparse.Namespace, out: Console) -> int:
    """Let a plan's waiting wave start (spec.approval): the wave the plan waits on, or, when none waits
    yet, its next wave ahead of time; ``--wave N`` approves every wave up to N. Never lowers an approval."""
    target = target_of(client, args.target)
    if target.kind != "RefreshPlan":
        raise CliError(
            f"{target.kind.lower()} {target.name} is no RefreshPlan", "approve names a plan: approve PLAN", Exit.USAGE
        )
    obj = target.obj
    approval = (obj.get("spec") or {}).get("approval") or {}
    if not approval.get("afterCanary") and not approval.get("everyWave"):
        raise CliError(
            f"refreshplan {target.name} has no approval gate",
            "set spec.approval.afterCanary or spec.approval.everyWave for its waves to wait for approval",
            Exit.USAGE,
        )
    status = obj.get("status") or {}
    waiting = status.get("awaitingApproval")
    wave = args.wave if args.wave is not None else int(waiting or (status.get("wavesStarted") or 0) + 1)
    current = str((obj["metadata"].get("annotations") or {}).get(APPROVED_WAVE_ANNOTATION, ""))
    if current.isdigit() and int(current) >= wave:
        out.print(f"refreshplan {target.name}: waves up to {current} are approved already", markup=False)
        return Exit.OK
    patch = {"metadata": {"annotations": {APPROVED_WAVE_ANNOTATION: str(wave)}}}
    fetch.write(
        f"approving wave {wave} of RefreshPlan {target.name}",
        lambda: client.patch(RefreshPlanResource, target.name, patch, patch_type=PatchType.MERGE),
    )
    said = "waited for approval" if waiting is not None and int(waiting) <= wave else "approved ahead of its turn"
    out.print(f"refreshplan {target.name}: wave {wave} approved ({said})", markup=False)
    return Exit.OK
