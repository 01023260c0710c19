"""The chart as helm renders it: lint, RBAC shape, hardening, values documentation, CRDs in sync."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helpers import CHART_DIR, KUBE_VERSION, REPO_ROOT, Manifest, find, helm, render, rule_set, template

NS = "hostrefresh-system"


@pytest.fixture(scope="module")
def default(helm_home: Path) -> list[Manifest]:
    return render(helm_home, namespace=NS)


def _pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def test_lint_is_clean(helm_home: Path) -> None:
    out = helm("lint", "--strict", str(CHART_DIR), "--kube-version", KUBE_VERSION, home=helm_home)
    assert "0 chart(s) failed" in out.stdout


def test_every_object_is_expected(default: list[Manifest]) -> None:
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in default)
    assert kinds == sorted(
        [
            ("ServiceAccount", "hr-hostrefresh-operator"),
            ("ServiceAccount", "hr-hostrefresh-agent"),
            ("ClusterRole", "hr-hostrefresh-operator"),
            ("ClusterRoleBinding", "hr-hostrefresh-operator"),
            ("Role", "hr-hostrefresh-operator"),
            ("RoleBinding", "hr-hostrefresh-operator"),
            ("Role", "hr-hostrefresh-operator-events"),
            ("RoleBinding", "hr-hostrefresh-operator-events"),
            ("ClusterRole", "hr-hostrefresh-agent"),
            ("ClusterRoleBinding", "hr-hostrefresh-agent"),
            ("Role", "hr-hostrefresh-agent"),
            ("RoleBinding", "hr-hostrefresh-agent"),
            ("Deployment", "hr-hostrefresh-operator"),
            ("PodDisruptionBudget", "hr-hostrefresh-operator"),
            ("DaemonSet", "hr-hostrefresh-agent"),
            ("ValidatingAdmissionPolicy", "hr-hostrefresh-agent-hostrefresh"),
            ("ValidatingAdmissionPolicyBinding", "hr-hostrefresh-agent-hostrefresh"),
            ("ValidatingAdmissionPolicy", "hr-hostrefresh-agent-lease"),
            ("ValidatingAdmissionPolicyBinding", "hr-hostrefresh-agent-lease"),
            ("ValidatingAdmissionPolicy", "hr-hostrefresh-agent-status"),
            ("ValidatingAdmissionPolicyBinding", "hr-hostrefresh-agent-status"),
            ("ValidatingAdmissionPolicy", "hr-hostrefresh-target-images"),
            ("ValidatingAdmissionPolicyBinding", "hr-hostrefresh-target-images"),
            ("Service", "hr-hostrefresh-operator-metrics"),
            ("Service", "hr-hostrefresh-agent-metrics"),
        ]
    )
    for m in default:
        if m["metadata"]["name"].endswith("-operator-events"):
            assert m["metadata"]["namespace"] == "default"  # where Events of cluster-scoped objects go
        elif m["kind"] not in ("ClusterRole", "ClusterRoleBinding") and not m["kind"].startswith("ValidatingAdmission"):
            assert m["metadata"]["namespace"] == NS, m["metadata"]["name"]


# -- RBAC ------------------------------------------------------------------------------------------


def test_operator_cluster_rbac_is_exactly_what_it_uses(default: list[Manifest]) -> None:
    rules = rule_set(find(default, "ClusterRole", "-operator")["rules"])
    expected = (
        {("", "nodes", v, ()) for v in ("get", "list", "watch", "patch")}
        | {
            ("hostrefresh.io", r, v, ())
            for r in ("hostrefreshes", "refreshplans")
            for v in ("get", "list", "watch", "patch")
        }
        | {
            ("hostrefresh.io", "hostrefreshes", "create", ()),
            ("coordination.k8s.io", "leases", "list", ()),
            ("coordination.k8s.io", "leases", "watch", ()),
            ("kubevirt.io", "virtualmachineinstances", "list", ()),
            ("kubevirt.io", "virtualmachineinstances", "watch", ()),
            ("apiextensions.k8s.io", "customresourcedefinitions", "list", ()),
            ("apiextensions.k8s.io", "customresourcedefinitions", "watch", ()),
        }
        | {
            ("hostrefresh.io", r, v, ())
            for r in ("hostrefreshes/status", "refreshplans/status")
            for v in ("get", "patch")
        }
    )
    assert rules == expected


def test_operator_events_role_creates_and_counts_repeats(default: list[Manifest]) -> None:
    # patch: a repeated Event is counted on the Event posted first (operator/eventseries.py).
    assert rule_set(find(default, "Role", "-operator-events")["rules"]) == {
        ("", "events", "create", ()),
        ("", "events", "patch", ()),
    }


def test_operator_leader_lease_is_narrowed_by_name(default: list[Manifest]) -> None:
    role = find(default, "Role", "-operator")
    rules = rule_set(role["rules"])
    assert rules == {
        ("coordination.k8s.io", "leases", "create", ()),
        ("coordination.k8s.io", "leases", "get", ("hostrefresh-operator",)),
        ("coordination.k8s.io", "leases", "update", ("hostrefresh-operator",)),
        ("", "events", "create", ()),
    }


def test_agent_rbac_reads_refreshes_and_patches_only_status(default: list[Manifest]) -> None:
    assert rule_set(find(default, "ClusterRole", "-agent")["rules"]) == {
        ("hostrefresh.io", "hostrefreshes", "get", ()),
        ("hostrefresh.io", "hostrefreshes", "list", ()),
        ("hostrefresh.io", "hostrefreshes", "watch", ()),
        ("hostrefresh.io", "hostrefreshes/status", "get", ()),
        ("hostrefresh.io", "hostrefreshes/status", "patch", ()),
    }
    assert rule_set(find(default, "Role", "-agent")["rules"]) == {
        ("coordination.k8s.io", "leases", v, ()) for v in ("create", "get", "update")
    }


def test_no_wildcards_and_bindings_name_the_right_accounts(default: list[Manifest]) -> None:
    for m in default:
        if m["kind"] in ("ClusterRole", "Role"):
            for rule in m["rules"]:
                flat = [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]
                assert "*" not in flat, m["metadata"]["name"]
                assert not {"secrets", "pods", "pods/exec"} & set(rule["resources"])
        if m["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            component = m["metadata"]["name"].removeprefix("hr-hostrefresh-").split("-")[0]
            assert m["roleRef"]["name"] == m["metadata"]["name"]
            assert m["subjects"] == [{"kind": "ServiceAccount", "name": f"hr-hostrefresh-{component}", "namespace": NS}]


def test_every_rbac_rule_is_justified_by_a_comment() -> None:
    for name in ("operator-rbac.yaml", "agent-rbac.yaml"):
        lines = (CHART_DIR / "templates" / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                assert lines[i - 1].strip().startswith("#"), f"{name}:{i + 1}: RBAC rule without a comment"


# -- admission policy ------------------------------------------------------------------------------


def test_admission_policies_match_the_agent_account_and_deny(default: list[Manifest]) -> None:
    for suffix, resources in (("-hostrefresh", {"hostrefreshes", "hostrefreshes/status"}), ("-lease", {"leases"})):
        policy = find(default, "ValidatingAdmissionPolicy", "-agent" + suffix)
        spec = policy["spec"]
        assert spec["failurePolicy"] == "Fail"
        assert {r for rule in spec["matchConstraints"]["resourceRules"] for r in rule["resources"]} == resources
        [condition] = spec["matchConditions"]
        assert condition["expression"] == (
            f'request.userInfo.username == "system:serviceaccount:{NS}:hr-hostrefresh-agent"'
        )
        assert any("authentication.kubernetes.io/node-name" in v["expression"] for v in spec["variables"])
        for validation in spec["validations"]:
            assert validation.get("message") or validation.get("messageExpression")
            assert validation["reason"] == "Forbidden"
        binding = find(default, "ValidatingAdmissionPolicyBinding", "-agent" + suffix)
        assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}


def test_admission_policies_can_be_turned_off(helm_home: Path) -> None:
    kinds = {m["kind"] for m in render(helm_home, {"admissionPolicy.enabled": "false"})}
    assert not {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} & kinds
    names = {m["metadata"]["name"] for m in render(helm_home, {"admissionPolicy.targetImages.enabled": "false"})}
    assert "hr-hostrefresh-target-images" not in names
    assert "hr-hostrefresh-agent-hostrefresh" in names


def test_target_images_policy_names_the_allowed_directories(default: list[Manifest], helm_home: Path) -> None:
    policy = find(default, "ValidatingAdmissionPolicy", "-target-images")["spec"]
    resources = {r for rule in policy["matchConstraints"]["resourceRules"] for r in rule["resources"]}
    assert resources == {"hostrefreshes", "refreshplans"}  # not their status: only a spec names an image
    assert policy["variables"][0] == {"name": "dirs", "expression": '["/var/lib/hostrefresh/images"]'}
    assert "matchConditions" not in policy  # everyone, not just the agent
    binding = find(default, "ValidatingAdmissionPolicyBinding", "-target-images")["spec"]
    assert binding == {"policyName": "hr-hostrefresh-target-images", "validationActions": ["Deny"]}
    custom = render(
        helm_home,
        extra=[
            "--set-json",
            'agent.imageDirs=["/srv/images/","/var/lib/hostrefresh/boot"]',
            "--set-json",
            'admissionPolicy.targetImages.objectSelector={"matchLabels":{"team":"hv"}}',
        ],
    )
    policy = find(custom, "ValidatingAdmissionPolicy", "-target-images")["spec"]
    assert policy["variables"][0]["expression"] == '["/srv/images","/var/lib/hostrefresh/boot"]'
    binding = find(custom, "ValidatingAdmissionPolicyBinding", "-target-images")["spec"]
    assert binding["matchResources"] == {"objectSelector": {"matchLabels": {"team": "hv"}}}
    bad = template(helm_home, "--set-json", 'agent.imageDirs=["images"]')
    assert bad.returncode != 0 and "not an absolute path" in bad.stderr


# -- workloads ----------------------------------------------------------------------------------


def test_operator_pod_is_hardened(default: list[Manifest]) -> None:
    deploy = find(default, "Deployment", "-operator")
    pod = _pod_spec(deploy)
    assert pod["serviceAccountName"] == "hr-hostrefresh-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostPID") and not pod.get("hostNetwork")
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["requests"].keys() == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    assert container["command"] == ["hostrefresh-operator"]
    assert container["args"][:1] == [f"--namespace={NS}"]
    assert "--metrics-port=9090" in container["args"] and "--health-port=8080" in container["args"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert env["POD_NAME"] == "metadata.name" and env["POD_NAMESPACE"] == "metadata.namespace"
    assert not any(v.get("hostPath") for v in pod["volumes"])
    assert deploy["spec"]["replicas"] == 2


def test_operator_pdb_follows_replicas(default: list[Manifest], helm_home: Path) -> None:
    pdb = find(default, "PodDisruptionBudget", "-operator")
    deploy = find(default, "Deployment", "-operator")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deploy["spec"]["selector"]
    single = render(helm_home, {"operator.replicas": "1"})
    assert not [m for m in single if m["kind"] == "PodDisruptionBudget"], "one replica with a PDB blocks every drain"


def test_marker_annotations_become_flags(helm_home: Path) -> None:
    deploy = find(
        render(helm_home, {"operator.markerAnnotations": "{a.example/x,b.example/y}"}), "Deployment", "-operator"
    )
    args = _pod_spec(deploy)["containers"][0]["args"]
    assert "--marker-annotation=a.example/x" in args and "--marker-annotation=b.example/y" in args


def test_agent_daemonset(default: list[Manifest]) -> None:
    ds = find(default, "DaemonSet", "-agent")
    pod = _pod_spec(ds)
    assert pod["serviceAccountName"] == "hr-hostrefresh-agent"
    assert pod["automountServiceAccountToken"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["hostPID"] is True and pod["hostNetwork"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"] == {"privileged": True, "runAsUser": 0, "readOnlyRootFilesystem": True}
    assert container["command"] == ["hostrefresh-agent"]
    args = container["args"]
    for expected in (
        "--node=$(NODE_NAME)",
        f"--namespace={NS}",
        "--health-port=8081",
        "--metrics-port=9091",
        "--vm-runtime=/var/lib/hostrefresh/vms",
        "--state-dir=/var/lib/hostrefresh/agent",
        "--sysfs-root=/sys",
        "--l0-backend=vmcall",
        "--vm-cgroup=hostrefresh-vms",  # VMs outlive the agent's pod
    ):
        assert expected in args
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert env["NODE_NAME"] == "spec.nodeName"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    host_paths = [v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v]
    assert host_paths == ["/var/lib/hostrefresh"]  # the default image directory lies inside
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/var/lib/hostrefresh", "/tmp"}
    assert "--image-dir=/var/lib/hostrefresh/images" in args
    assert "--max-image-bytes=268435456" in args


def test_vm_cgroup_can_be_left_out(helm_home: Path) -> None:
    args = _pod_spec(find(render(helm_home, {"agent.vmCgroup": ""}), "DaemonSet", "-agent"))["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--vm-cgroup")]


def test_agent_runs_only_on_labelled_amd64_hypervisors_by_default(default: list[Manifest], helm_home: Path) -> None:
    selector = _pod_spec(find(default, "DaemonSet", "-agent"))["nodeSelector"]
    assert selector == {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "hostrefresh.io/hypervisor": "true",
    }
    everywhere = render(helm_home, extra=["--set", "agent.nodeSelector=null"])
    assert "nodeSelector" not in _pod_spec(find(everywhere, "DaemonSet", "-agent"))


def test_metrics_services_and_optional_service_monitors(default: list[Manifest], helm_home: Path) -> None:
    agent = find(default, "Service", "-agent-metrics")
    assert agent["spec"]["clusterIP"] == "None" and agent["spec"]["ports"] == [
        {"name": "metrics", "port": 9091, "targetPort": "metrics"}
    ]
    assert agent["spec"]["selector"]["app.kubernetes.io/component"] == "agent"
    operator = find(default, "Service", "-operator-metrics")
    assert operator["spec"]["ports"][0]["port"] == 9090 and "clusterIP" not in operator["spec"]
    assert not [m for m in default if m["kind"] == "ServiceMonitor"]
    monitored = render(helm_home, {"serviceMonitor.enabled": "true", "serviceMonitor.interval": "15s"})
    monitors = {m["metadata"]["name"]: m for m in monitored if m["kind"] == "ServiceMonitor"}
    assert set(monitors) == {"hr-hostrefresh-operator", "hr-hostrefresh-agent"}
    [endpoint] = monitors["hr-hostrefresh-agent"]["spec"]["endpoints"]
    assert endpoint["interval"] == "15s"
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "hostrefresh-agent"}]
    none = render(helm_home, {"metricsService.enabled": "false"})
    assert not [m for m in none if m["kind"] == "Service"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "operator.replicsa=3"], "additional properties 'replicsa' not allowed"),
        (["--set", "agent.l0Backend=kvm"], "at '/agent/l0Backend': value must be one of 'vmcall', 'sim'"),
        (["--set", "operator.metricsPort=70000"], "at '/operator/metricsPort'"),
        (["--set", "agent.image.digest=latest"], "at '/agent/image/digest'"),
        (["--set", "imagePullSecret=x"], "additional properties 'imagePullSecret' not allowed"),
        (["--set", "agent.vmCgroup=../up"], "at '/agent/vmCgroup'"),
    ],
)
def test_a_typo_or_a_wrong_value_fails_naming_it(helm_home: Path, values: list[str], message: str) -> None:
    result = template(helm_home, *values)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_agent_gets_every_image_directory(helm_home: Path) -> None:
    dirs = '["/var/lib/hostrefresh/images","/srv/images"]'
    ds = find(render(helm_home, extra=["--set-json", f"agent.imageDirs={dirs}"]), "DaemonSet", "-agent")
    pod = _pod_spec(ds)
    [container] = pod["containers"]
    assert [a for a in container["args"] if a.startswith("--image-dir")] == [
        "--image-dir=/var/lib/hostrefresh/images",
        "--image-dir=/srv/images",
    ]
    # Only the one outside hostStateDir needs a mount of its own; read-only.
    mounts = [m for m in container["volumeMounts"] if m["name"].startswith("images-")]
    assert mounts == [{"name": "images-0", "mountPath": "/srv/images", "readOnly": True}]
    [volume] = [v for v in pod["volumes"] if v["name"] == "images-0"]
    assert volume["hostPath"] == {"path": "/srv/images", "type": "Directory"}
    big = find(render(helm_home, {"agent.maxImageBytes": "1073741824"}), "DaemonSet", "-agent")
    assert "--max-image-bytes=1073741824" in _pod_spec(big)["containers"][0]["args"]


def _tolerates(tolerations: list[dict[str, str]], key: str, effect: str) -> bool:
    for t in tolerations:
        key_ok = t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists")
        effect_ok = not t.get("effect") or t.get("effect") == effect
        if key_ok and effect_ok and t.get("operator") == "Exists":
            return True
    return False


def test_agent_runs_on_tainted_nodes(default: list[Manifest]) -> None:
    tolerations = _pod_spec(find(default, "DaemonSet", "-agent"))["tolerations"]
    for key in ("hostrefresh.io/refreshing", "node.kubernetes.io/unschedulable", "node.kubernetes.io/not-ready"):
        for effect in ("NoSchedule", "NoExecute"):
            assert _tolerates(tolerations, key, effect), (key, effect)
    operator = _pod_spec(find(default, "Deployment", "-operator"))
    assert not _tolerates(operator.get("tolerations") or [], "hostrefresh.io/refreshing", "NoSchedule")


def test_every_agent_privilege_is_justified_in_the_template() -> None:
    text = (CHART_DIR / "templates" / "agent-daemonset.yaml").read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for privilege in ("privileged: true", "runAsUser: 0", "hostPID", "hostPath", "/dev/kvm", "/sys", "VMCALL"):
        assert privilege in comments, f"no comment justifies {privilege}"


# -- images -------------------------------------------------------------------------------------


def _images(manifests: list[Manifest]) -> list[str]:
    return [
        c["image"] for m in manifests if m["kind"] in ("Deployment", "DaemonSet") for c in _pod_spec(m)["containers"]
    ]


def test_images_default_to_app_version_without_a_registry(default: list[Manifest]) -> None:
    app_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    assert sorted(_images(default)) == [f"hostrefresh-agent:{app_version}", f"hostrefresh-operator:{app_version}"]


def test_image_prefix_tag_and_digest_overrides(helm_home: Path) -> None:
    tagged = render(helm_home, {"image.prefix": "example/hostrefresh/", "image.tag": "9.9.9"})
    assert sorted(_images(tagged)) == [
        "example/hostrefresh/hostrefresh-agent:9.9.9",
        "example/hostrefresh/hostrefresh-operator:9.9.9",
    ]
    digest = "sha256:" + "a" * 64
    pinned = render(helm_home, {"agent.image.digest": digest})
    assert f"hostrefresh-agent@{digest}" in _images(pinned) and "hostrefresh-operator:" in " ".join(_images(pinned))


def test_no_registry_host_names_in_the_chart() -> None:
    # A registry host is a first image-path component with a dot or a port ("host.tld/...", "host:5000/...").
    pattern = re.compile(r"\b[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?/[a-z0-9._/-]+(:[\w.-]+)?\b")
    for path in sorted(CHART_DIR.rglob("*")):
        if path.is_file() and "crds" not in path.parts:
            for match in pattern.finditer(path.read_text()):
                text = match.group(0)
                assert text.split("/")[0] in {
                    "hostrefresh.io",
                    "kubevirt.io",
                    "coordination.k8s.io",
                    "events.k8s.io",
                    "apiextensions.k8s.io",
                    "rbac.authorization.k8s.io",
                    "admissionregistration.k8s.io",
                    "helm.sh",
                    "kubernetes.io",
                    "authentication.kubernetes.io",
                    "app.kubernetes.io",
                    "node.kubernetes.io",
                    "monitoring.coreos.com",
                    "pod-security.kubernetes.io",
                }, f"{path}: {text}"


# -- values ---------------------------------------------------------------------------------------


def _key_lines(node: yaml.Node, in_sequence: bool = False) -> list[int]:
    """0-based lines of every mapping key outside sequences, and of every sequence item's start."""
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not in_sequence:
                lines.append(key.start_mark.line)
            lines += _key_lines(value, in_sequence)
    elif isinstance(node, yaml.SequenceNode) and not node.flow_style:
        for item in node.value:
            lines.append(item.start_mark.line)
            lines += _key_lines(item, in_sequence=True)
    return lines


def test_every_value_is_commented() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    lines = text.splitlines()
    root = yaml.compose(text)
    assert root is not None
    key_lines = _key_lines(root)
    assert len(key_lines) > 50
    undocumented = []
    for line_no in key_lines:
        above = line_no - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        if above < 0 or not lines[above].lstrip().startswith("#"):
            undocumented.append(f"values.yaml:{line_no + 1}: {lines[line_no].strip()}")
    assert not undocumented, "values without a comment above them:\n" + "\n".join(undocumented)


# -- CRDs -----------------------------------------------------------------------------------------


def test_chart_crds_equal_the_generated_ones() -> None:
    repo = {p.name: p.read_bytes() for p in sorted((REPO_ROOT / "crds").glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted((CHART_DIR / "crds").glob("*.yaml"))}
    assert repo, "crds/*.yaml missing"
    assert chart == repo, "charts/hostrefresh/crds/ is stale: run `make crds` (it copies crds/*.yaml into the chart)"


def test_helm_renders_the_crds_with_include_crds(helm_home: Path) -> None:
    manifests = render(helm_home, extra=["--include-crds"])
    crds = sorted(m["metadata"]["name"] for m in manifests if m["kind"] == "CustomResourceDefinition")
    assert crds == ["hostrefreshes.hostrefresh.io", "refreshplans.hostrefresh.io"]


def test_the_simulators_agent_is_opt_in(helm_home: Path) -> None:
    """kind's values run the agent with a fake sysfs: another command, the chart's flags kept."""
    kind = render(helm_home, extra=["-f", str(REPO_ROOT / "deploy" / "kind" / "values-kind.yaml")])
    [container] = _pod_spec(find(kind, "DaemonSet", "-agent"))["containers"]
    assert container["command"] == ["python3", "-m", "hostrefresh.sim.agent"]
    assert "--node=$(NODE_NAME)" in container["args"] and container["args"][-1] == "--fake-sysfs"


def test_simulated_l0_is_opt_in(default: list[Manifest], helm_home: Path) -> None:
    args = _pod_spec(find(default, "DaemonSet", "-agent"))["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--l0-sim-state")]
    sim = render(helm_home, {"agent.l0Backend": "sim", "agent.l0SimState": "/var/lib/hostrefresh/l0-sim.state"})
    args = _pod_spec(find(sim, "DaemonSet", "-agent"))["containers"][0]["args"]
    assert "--l0-backend=sim" in args and "--l0-sim-state=/var/lib/hostrefresh/l0-sim.state" in args
