"""The committed CRDs are generated from the pydantic models and are what Kubernetes expects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hostrefresh.api import CMDLINE_MAX, IMAGE_PATH_MAX, HostRefresh, LabelSelector, RefreshPlan, TargetHost
from hostrefresh.api.crd import render_all
from hostrefresh.l0 import _binding as b
from hostrefresh.l0.client import _set_str

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_are_current() -> None:
    rendered = render_all()
    committed = {p.name: p.read_text() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    assert set(committed) == set(rendered), "crds/ holds other files than the generator makes; run `make crds`"
    for name, text in rendered.items():
        assert committed[name] == text, f"crds/{name} is stale: run `make crds` and commit the result"


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in schema:
        found += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _walk(schema["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("name", sorted(render_all()))
def test_every_field_is_documented_and_structural(name: str) -> None:
    crd = yaml.safe_load(render_all()[name])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema, ""):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "nullable"} & set(node), f"{path} is not structural"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if path.count(".") >= 1 and not path.endswith(("[]", "{}")) and path != ".metadata":
            assert node.get("description"), f"{name}: field {path} has no description"


def test_conditions_are_a_map_list_keyed_by_type() -> None:
    for text in render_all().values():
        crd = yaml.safe_load(text)
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        conditions = status["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        item = conditions["items"]
        assert set(item["required"]) >= {"type", "status", "lastTransitionTime", "reason"}
        assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
        assert crd["spec"]["scope"] == "Cluster"


def test_examples_validate_against_the_models() -> None:
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            model = {"HostRefresh": HostRefresh, "RefreshPlan": RefreshPlan}[doc["kind"]]
            model.model_validate(doc)


def test_models_reject_unknown_fields_like_the_server() -> None:
    with pytest.raises(ValidationError, match="nodeNmae"):
        HostRefresh.model_validate(
            {
                "spec": {
                    "nodeNmae": "x",
                    "nodeName": "x",
                    "target": {
                        "version": "1",
                        "kernel": "/k",
                        "checksum": "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
                    },
                }
            }
        )


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"pool": "a"}}, {"pool": "a", "x": "y"}, True),
        ({"matchLabels": {"pool": "a"}}, {"pool": "b"}, False),
        ({"matchExpressions": [{"key": "z", "operator": "In", "values": ["1", "2"]}]}, {"z": "2"}, True),
        ({"matchExpressions": [{"key": "z", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "z", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "z", "operator": "NotIn", "values": ["1"]}]}, {"z": "1"}, False),
        ({"matchExpressions": [{"key": "z", "operator": "Exists"}]}, {"z": ""}, True),
        ({"matchExpressions": [{"key": "z", "operator": "DoesNotExist"}]}, {"z": ""}, False),
        ({}, {"anything": "x"}, True),
    ],
)
def test_label_selector_semantics(selector: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is matches


@pytest.mark.parametrize("name", sorted(render_all()))
def test_image_fields_fit_what_the_l0_takes(name: str) -> None:
    """Whatever the API server accepts in spec.target, the L0's image descriptor holds (with its NUL)."""
    crd = yaml.safe_load(render_all()[name])
    target = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["target"]
    fields = target["properties"]
    spec_rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"
    ]
    # A Host refresh needs the kernel and its checksum; a VMM refresh the QEMU binary (rules per scope).
    assert any("has(self.target.kernel) && has(self.target.checksum)" in r["rule"] for r in spec_rules)
    assert any("has(self.target.qemu)" in r["rule"] for r in spec_rules)
    assert fields["qemu"]["required"] == ["binary", "checksum"]
    for field, limit in (("kernel", b.L0_PATH_MAX), ("initrd", b.L0_PATH_MAX), ("cmdline", b.L0_CMDLINE_MAX)):
        assert fields[field]["maxLength"] == limit - 1, field
        assert re.fullmatch(r"\^/?\[ -~\]\*\$", fields[field]["pattern"]), field  # ASCII: characters are bytes
    assert (IMAGE_PATH_MAX, CMDLINE_MAX) == (b.L0_PATH_MAX - 1, b.L0_CMDLINE_MAX - 1)
    # The longest the models accept goes into the descriptor.
    longest = TargetHost(
        version="1", kernel="/" + "k" * 254, initrd="/" + "i" * 254, cmdline="c" * 1023, checksum="sha256:" + "0" * 64
    )
    img = b.new_image()
    _set_str(img.kernel, longest.kernel or "", b.L0_PATH_MAX, "kernel path")
    _set_str(img.initrd, longest.initrd or "", b.L0_PATH_MAX, "initrd path")
    _set_str(img.cmdline, longest.cmdline, b.L0_CMDLINE_MAX, "command line")
    with pytest.raises(ValidationError):
        TargetHost(version="1", kernel="/" + "k" * 255, checksum="sha256:" + "0" * 64)
    with pytest.raises(ValidationError):
        TargetHost(version="1", kernel="/k", cmdline="é", checksum="sha256:" + "0" * 64)


def _columns(kind: str) -> list[tuple[str, str, int]]:
    crd = yaml.safe_load(render_all()[f"{kind}.hostrefresh.io.yaml"])
    return [
        (c["name"], c["jsonPath"], c.get("priority", 0)) for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
    ]


def test_plan_columns_show_failed_nodes_and_ready() -> None:
    columns = _columns("refreshplans")
    assert [name for name, _, _ in columns] == [
        "Target",
        "Nodes",
        "Succeeded",
        "Failed",
        "Active",
        "Paused",
        "Ready",
        "Age",
    ]
    assert ("Failed", ".status.failed", 0) in columns
    assert ("Ready", '.status.conditions[?(@.type=="Ready")].status', 0) in columns


def test_refresh_reason_and_message_columns_show_only_wide() -> None:
    columns = _columns("hostrefreshes")
    assert [name for name, _, priority in columns if priority == 0] == [
        "Node",
        "Phase",
        "Target",
        "Scope",
        "Nested",
        "Age",
    ]
    assert [(name, path) for name, path, priority in columns if priority == 1] == [
        ("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
        ("Message", '.status.conditions[?(@.type=="Ready")].message'),
    ]
