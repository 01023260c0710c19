"""Generate the CustomResourceDefinitions from the pydantic models (the single source of truth).

pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no ``$ref``, no
``anyOf`` over types, ``x-kubernetes-int-or-string`` for int-or-string, ``nullable`` never (unset
optional fields are simply absent). This module rewrites one into the other and adds the CRD
envelope: printer columns, short names, status subresource and the cross-field CEL rules.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hostrefresh.api.conditions import NESTED_ACTIVE, READY
from hostrefresh.api.hostrefresh import (
    SPEC_FROZEN_WHILE_RUNNING,
    SPEC_RULES,
    HostRefresh,
    HostRefreshSpec,
    HostRefreshStatus,
)
from hostrefresh.api.names import GROUP, VERSION
from hostrefresh.api.refreshplan import (
    PLAN_ROOT_RULES,
    PLAN_SPEC_RULES,
    RefreshPlan,
    RefreshPlanSpec,
    RefreshPlanStatus,
)

Schema = dict[str, Any]
_DROP_KEYS = {"title"}


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    """Inline every ``$ref`` (pydantic puts sub-models in ``$defs``)."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        target.update(siblings)  # a field's own description wins over the model docstring
        return _resolve(target, defs)
    return {k: _resolve(v, defs) for k, v in node.items() if k not in ("$defs",)}


def _structural(node: Any) -> Any:
    """Rewrite resolved JSON Schema into the structural subset Kubernetes accepts."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in _DROP_KEYS}
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        types = sorted(v.get("type", "") for v in variants)
        if types == ["integer", "string"]:
            node["x-kubernetes-int-or-string"] = True
        elif len(variants) == 1:
            merged = dict(variants[0])
            merged.update(node)
            node = merged
        else:
            raise ValueError(f"cannot express anyOf {variants!r} in a structural schema")
        if node.get("default", "absent") is None:
            del node["default"]
            node[_ABSENT] = True
    if node.get("default", "absent") is None:
        del node["default"]
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = dict(node.pop("allOf")[0])
        merged.update(node)
        node = merged
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("type") == "object" and "properties" in node:
        node.setdefault("additionalProperties", None)
        if node["additionalProperties"] in (None, False):
            del node["additionalProperties"]
    return {k: _structural(v) for k, v in node.items()}


def model_schema(model: type[BaseModel]) -> Schema:
    """Structural OpenAPI v3 schema of one pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: Schema = _structural(_resolve(raw, defs))
    schema.pop("description", None)  # the caller sets the field-level description
    return schema


def _enum_defaults_to_strings(node: Any) -> Any:
    """Dump pydantic enum defaults by value so the YAML stays plain."""
    if isinstance(node, dict):
        return {k: _enum_defaults_to_strings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_enum_defaults_to_strings(v) for v in node]
    if hasattr(node, "value"):
        return node.value
    return node


#: Marks an optional field whose default is None (absent) for ``_default_empty_objects``, which removes it.
_ABSENT = "x-absent-by-default"


def _default_empty_objects(node: Schema) -> bool:
    """Give optional sub-objects ``default: {}`` when all their fields have defaults.

    The API server applies nested defaults only inside objects that exist; ``default: {}`` makes
    ``spec.handover`` (and the like) appear with all its defaults when the user leaves it out.
    Returns whether ``node`` can be defaulted from nothing.
    """
    props: dict[str, Schema] = node.get("properties", {})
    required = set(node.get("required", []))
    for name, child in props.items():
        absent = child.get(_ABSENT, False)  # None by default: the user sets it or it stays absent
        definable = "properties" in child and "default" not in child and _default_empty_objects(child)
        if definable and name not in required and not absent:
            child["default"] = {}
    return not required and all(
        "default" in c or c.get("type") != "object" or c.get(_ABSENT, False) for c in props.values()
    )


def _without_marks(node: Any) -> Any:
    """``node`` without the ``_ABSENT`` marks (Kubernetes knows no such keyword)."""
    if isinstance(node, list):
        return [_without_marks(item) for item in node]
    if isinstance(node, dict):
        return {k: _without_marks(v) for k, v in node.items() if k != _ABSENT}
    return node


def _root_schema(
    model: type[BaseModel],
    spec: type[BaseModel],
    status: type[BaseModel],
    spec_rules: list[dict[str, str]],
    root_rules: list[dict[str, str]] | None = None,
) -> Schema:
    kind = model.__name__
    spec_schema = model_schema(spec)
    _default_empty_objects(spec_schema)
    spec_schema["description"] = f"Desired state of the {kind}."
    if spec_rules:
        spec_schema["x-kubernetes-validations"] = spec_rules
    status_schema = model_schema(status)
    status_schema["description"] = f"Observed state of the {kind}."
    root: Schema = {
        "type": "object",
        "description": (model.__doc__ or kind).strip().splitlines()[0],
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion of this representation of the object.",
            },
            "kind": {"type": "string", "description": "Kind of the object: " + kind + "."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if root_rules:  # rules that read more than the spec (metadata, status): only the root sees them
        root["x-kubernetes-validations"] = root_rules
    cleaned: Schema = _without_marks(root)
    return cleaned


def _crd(
    model: type[HostRefresh] | type[RefreshPlan],
    schema: Schema,
    columns: list[dict[str, Any]],
    categories: list[str],
    selectable: tuple[str, ...] = (),
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
    }
    if selectable:  # lets agents watch only their node's objects with a field selector
        version["selectableFields"] = [{"jsonPath": path} for path in selectable]
    version["schema"] = {"openAPIV3Schema": _enum_defaults_to_strings(schema)}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{model.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "hostrefresh", "app.kubernetes.io/part-of": "hostrefresh"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": model.KIND,
                "listKind": f"{model.KIND}List",
                "plural": model.PLURAL,
                "singular": model.SINGULAR,
                "shortNames": model.SHORT_NAMES,
                "categories": categories,
            },
            "versions": [version],
        },
    }


def host_refresh_crd() -> dict[str, Any]:
    """The HostRefresh CRD."""
    schema = _root_schema(HostRefresh, HostRefreshSpec, HostRefreshStatus, SPEC_RULES, [SPEC_FROZEN_WHILE_RUNNING])
    columns: list[dict[str, Any]] = [
        {
            "name": "Node",
            "type": "string",
            "jsonPath": ".spec.nodeName",
            "description": "Node being refreshed.",
        },
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Current phase."},
        {
            "name": "Target",
            "type": "string",
            "jsonPath": ".spec.target.version",
            "description": "Target version.",
        },
        {"name": "Scope", "type": "string", "jsonPath": ".spec.scope", "description": "Host or VMM (QEMU only)."},
        {
            "name": "Nested",
            "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{NESTED_ACTIVE}")].status',
            "description": "Whether nested virtualization is on now.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        # -o wide: the Ready condition sums the refresh up (why it waits, why it failed or rolled back).
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{READY}")].reason',
            "description": "Reason of the Ready condition.",
            "priority": 1,
        },
        {
            "name": "Message",
            "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{READY}")].message',
            "description": "Message of the Ready condition: why the refresh waits, failed or rolled back.",
            "priority": 1,
        },
    ]
    return _crd(HostRefresh, schema, columns, ["refreshes"], selectable=(".spec.nodeName",))


def refresh_plan_crd() -> dict[str, Any]:
    """The RefreshPlan CRD."""
    schema = _root_schema(RefreshPlan, RefreshPlanSpec, RefreshPlanStatus, PLAN_SPEC_RULES, PLAN_ROOT_RULES)
    columns = [
        {
            "name": "Target",
            "type": "string",
            "jsonPath": ".spec.target.version",
            "description": "Target version.",
        },
        {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes", "description": "Selected nodes."},
        {
            "name": "Succeeded",
            "type": "integer",
            "jsonPath": ".status.succeeded",
            "description": "Nodes done.",
        },
        {
            "name": "Failed",
            "type": "integer",
            "jsonPath": ".status.failed",
            "description": "Node refreshes that failed or rolled back.",
        },
        {"name": "Active", "type": "integer", "jsonPath": ".status.active", "description": "Refreshing now."},
        {"name": "Paused", "type": "boolean", "jsonPath": ".status.paused", "description": "Paused."},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": f'.status.conditions[?(@.type=="{READY}")].status',
            "description": "Whether every selected node runs the target.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd(RefreshPlan, schema, columns, ["refreshes"])


def all_crds() -> list[dict[str, Any]]:
    """Every CRD of the API, in the order of crds/ and of the API reference (docs/api.md)."""
    return [host_refresh_crd(), refresh_plan_crd()]


def render_all() -> dict[str, str]:
    """File name -> YAML text of every CRD, exactly as committed under crds/."""
    header = "# Generated by `make crds` from src/hostrefresh/api; do not edit by hand.\n"
    out = {}
    for crd in all_crds():
        name = crd["metadata"]["name"]
        out[f"{name}.yaml"] = header + yaml.safe_dump(crd, sort_keys=False, width=120)
    return out


def write_all(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def main() -> None:
    """``python -m hostrefresh.api.crd [DIR]``: regenerate the committed CRDs."""
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "crds")
    for path in write_all(target):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
