"""The API's names, each defined once: group and version, label, annotation, taint and finalizer keys;
and object names where Kubernetes allows less than a name (label values and taint values).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal, get_args

#: ``hostrefresh.io/v1alpha1``, the apiVersion of HostRefresh and RefreshPlan: the one spelling of the
#: API group and version. The models type their ``apiVersion`` with this Literal; GROUP and VERSION
#: are cut from it.
ApiVersion = Literal["hostrefresh.io/v1alpha1"]
API_VERSION: Final[ApiVersion] = get_args(ApiVersion)[0]
GROUP: Final = API_VERSION.partition("/")[0]
VERSION: Final = API_VERSION.partition("/")[2]

#: ``hostrefresh.io/node``: label naming the node of a HostRefresh and of an agent's heartbeat Lease
#: (its `label_value` form); the annotation of the same key holds the node's whole name.
NODE_LABEL: Final = f"{GROUP}/node"
NODE_ANNOTATION: Final = NODE_LABEL
#: ``hostrefresh.io/plan``: label naming the RefreshPlan that created a HostRefresh.
PLAN_LABEL: Final = f"{GROUP}/plan"
#: ``hostrefresh.io/finalizer``: the operator's finalizer on HostRefresh objects (kopf's, under our group).
FINALIZER: Final = f"{GROUP}/finalizer"
#: ``hostrefresh.io/refreshing``: key of the NoSchedule taint on a node while a host refresh runs, and
#: of the operator's default marker annotation on a refreshing node.
REFRESH_TAINT_KEY: Final = f"{GROUP}/refreshing"
#: ``hostrefresh.io/claimed-by``: annotation naming the one HostRefresh that holds a node.
CLAIM_ANNOTATION: Final = f"{GROUP}/claimed-by"
#: ``hostrefresh.io/capabilities``: annotation on an agent's heartbeat Lease saying what its node can do,
#: as JSON: ``l0`` (``present``, ``absent`` or ``incompatible``), ``l0Backend``, ``kernel``. The
#: operator grants a host refresh only to a node whose L0 is present.
CAPABILITIES_ANNOTATION: Final = f"{GROUP}/capabilities"
#: ``hostrefresh.io/retry``: annotation on a failed HostRefresh of a plan asking the plan to refresh its
#: node again (``kubectl hostrefresh retry`` sets it to when it was asked). The failed object stays,
#: as the record of what failed; the plan no longer counts it as failed.
RETRY_ANNOTATION: Final = f"{GROUP}/retry"
#: ``hostrefresh.io/retry-of``: annotation on a HostRefresh naming the failed one it retries.
RETRY_OF_ANNOTATION: Final = f"{GROUP}/retry-of"
#: ``hostrefresh.io/approved-wave``: annotation on a RefreshPlan approving its waves up to this number
#: (``kubectl hostrefresh approve PLAN`` sets it to the wave that waits). An annotation, not spec: an
#: approval is an act, not desired state, and GitOps tools that own the spec leave it alone.
APPROVED_WAVE_ANNOTATION: Final = f"{GROUP}/approved-wave"

#: ``hostrefresh.io/host-version`` and ``hostrefresh.io/qemu-version``: the record of what a node runs,
#: written by the operator when a HostRefresh of scope Host (host-version) or VMM (qemu-version) ends
#: Succeeded, and left in place when that HostRefresh is deleted. As a label, ``spec.target.version``
#: in its `version_label_value` form, for selectors ("nodes not yet on X"); as the annotation of the
#: same key, the version exactly as the HostRefresh spells it.
HOST_VERSION_KEY: Final = f"{GROUP}/host-version"
QEMU_VERSION_KEY: Final = f"{GROUP}/qemu-version"
#: ``hostrefresh.io/host-refreshed-by`` / ``-at`` (and ``qemu-refreshed-by`` / ``-at``): annotations
#: naming the HostRefresh that recorded the version above, and when it completed (RFC 3339). A node's
#: record is never replaced by that of a refresh which completed earlier.
HOST_REFRESHED_BY_ANNOTATION: Final = f"{GROUP}/host-refreshed-by"
HOST_REFRESHED_AT_ANNOTATION: Final = f"{GROUP}/host-refreshed-at"
QEMU_REFRESHED_BY_ANNOTATION: Final = f"{GROUP}/qemu-refreshed-by"
QEMU_REFRESHED_AT_ANNOTATION: Final = f"{GROUP}/qemu-refreshed-at"
#: Every key of a node's record (labels and annotations), which stays on the Node after its refresh.
NODE_RECORD_KEYS: Final = frozenset(
    {
        HOST_VERSION_KEY,
        QEMU_VERSION_KEY,
        HOST_REFRESHED_BY_ANNOTATION,
        HOST_REFRESHED_AT_ANNOTATION,
        QEMU_REFRESHED_BY_ANNOTATION,
        QEMU_REFRESHED_AT_ANNOTATION,
    }
)

#: A label value (and a taint value) holds at most this many characters.
LABEL_VALUE_MAX = 63


def label_value(name: str) -> str:
    """``name`` as a label or taint value: itself when it fits (63 characters), else its first
    characters and a hash of the whole, so that two long names never share a value.

    Object names (DNS subdomains: ``[a-z0-9.-]``, alphanumeric at both ends) are valid label values
    once short enough; the shortened form keeps that (no trailing ``-`` or ``.`` before the hash).
    """
    if len(name) <= LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    head = name[: LABEL_VALUE_MAX - len(digest) - 1].rstrip("-._")
    return f"{head}-{digest}" if head else digest


_NOT_IN_LABEL_VALUE = re.compile(r"[^-A-Za-z0-9_.]")


def version_label_value(version: str) -> str:
    """``version`` (a ``spec.target.version``: letters, digits and ``._+~-``) as a label value.

    The characters a label value cannot hold (``+`` and ``~``) become ``_``, a trailing ``-``, ``.``
    or ``_`` is dropped, and a value over 63 characters is shortened as `label_value` does:
    ``6.12.4+kvm1`` is ``6.12.4_kvm1``. (Two versions that differ only there share a label value;
    the annotation of the same key keeps the exact version.)
    """
    return label_value(_NOT_IN_LABEL_VALUE.sub("_", version).rstrip("-._"))


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def dns_label_problem(value: str) -> str | None:
    """Why ``value`` is no DNS-1123 label (a namespace's name), or None when it is one."""
    if len(value) > LABEL_VALUE_MAX or not _DNS_LABEL.match(value):
        return "must be at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
    return None


def dns_subdomain_problem(value: str) -> str | None:
    """Why ``value`` is no DNS-1123 subdomain (a node's name), or None when it is one."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        return (
            "must be at most 253 lowercase letters, digits, '-' and '.', each dot-separated part starting and "
            "ending with a letter or digit (a Kubernetes node name)"
        )
    return None


def qualified_name_problem(value: str) -> str | None:
    """Why ``value`` is no annotation or label key (``[prefix/]name``), or None when it is one."""
    prefix, _, name = value.rpartition("/")
    if prefix and dns_subdomain_problem(prefix) is not None:
        return f"prefix {prefix!r} must be a DNS subdomain such as example.com"
    if len(name) > LABEL_VALUE_MAX or not _QUALIFIED_NAME.match(name):
        return (
            "must be [prefix/]name, the name at most 63 letters, digits, '-', '_' and '.', starting and ending "
            "with a letter or digit, e.g. example.com/refreshing"
        )
    return None
