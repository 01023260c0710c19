"""Object names where Kubernetes allows less than a name: label values and taint values."""

from __future__ import annotations

import hashlib
import re

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
