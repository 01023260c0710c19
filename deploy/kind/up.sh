#!/usr/bin/env bash
# `make kind-up`: a kind cluster (deploy/kind/kind-config.yaml: 1 control plane, 3 workers) from the
# node image built here, the product's images loaded into it, and the chart installed with
# deploy/kind/values-kind.yaml. Idempotent: an existing cluster of that name is kept and the chart
# upgraded. Prints the KUBECONFIG line to use.
#
#   KIND_CLUSTER   cluster name (default: hostrefresh)
#   KIND_KUBECONFIG  where the kubeconfig goes (default: .cache/kind/<cluster>.kubeconfig)
#   NODE_IMAGE     a node image to use instead of building one (e.g. kindest/node:v1.34.0)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
CLUSTER=${KIND_CLUSTER:-hostrefresh}
KUBECONFIG_OUT=${KIND_KUBECONFIG:-$PWD/.cache/kind/$CLUSTER.kubeconfig}
NAMESPACE=hostrefresh-system
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*" >&2; }

bash scripts/docker-engine.sh
cp_bin=$($PYTHON -m hostrefresh.controlplane build)
kind_bin=$($PYTHON -m hostrefresh.controlplane kind-tools)
kind=$kind_bin/kind kubectl=$cp_bin/kubectl helm=$cp_bin/helm docker=/usr/bin/docker
# The images by the immutable tag build.sh gives them (version and commit): a kept cluster never runs an
# older build under a tag it already has, and `helm upgrade` rolls the pods when the build changed.
tag=$(bash deploy/images/build.sh | sed -n 's/^hostrefresh-operator://p')
stamp "product images built ($tag)"
config=$(mktemp)
trap 'rm -f "$config"' EXIT
cp deploy/kind/kind-config.yaml "$config"
if [ -z "${NODE_IMAGE:-}" ]; then
  NODE_IMAGE=$(bash deploy/kind/build-node-image.sh)
  etcd=$($PYTHON -c 'from hostrefresh.controlplane import versions; print(versions.ETCD.lstrip("v"))')
  sed "s/ETCD_TAG/$etcd-0/" deploy/kind/node-image/kubeadm-patches.yaml >> "$config"
fi
stamp "node image $NODE_IMAGE"

mkdir -p "$(dirname "$KUBECONFIG_OUT")"
if ! $kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  $kind create cluster --name "$CLUSTER" --config "$config" --image "$NODE_IMAGE" --kubeconfig "$KUBECONFIG_OUT"
  stamp "cluster $CLUSTER created"
else
  $kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG_OUT" >/dev/null
  running=$($docker inspect -f '{{.Config.Image}}' "$CLUSTER-control-plane" 2>/dev/null || true)
  [ "$running" = "$NODE_IMAGE" ] || echo "note: cluster $CLUSTER runs node image $running, not $NODE_IMAGE (make kind-down, then up, to change)" >&2
fi
export KUBECONFIG=$KUBECONFIG_OUT

# What the kind values need on every worker: a simulated L0 (powered on) and a simulated sysfs.
workers=$($kind get nodes --name "$CLUSTER" | grep -v control-plane)
sim=$(mktemp -d)
trap 'rm -f "$config"; rm -rf "$sim"' EXIT
for node in $workers; do
  if ! $docker exec "$node" test -f /var/lib/hostrefresh/sim/l0.state; then
    $PYTHON -m hostrefresh.sim.node "$sim" "$node" >/dev/null
    $docker exec "$node" sh -c 'rm -rf /var/lib/hostrefresh/sim && mkdir -p /var/lib/hostrefresh'
    $docker cp "$sim/$node" "$node:/var/lib/hostrefresh/sim" >/dev/null
  fi
done

# Into the workers only: the control plane runs neither (the operator does not tolerate its taint).
$kind load docker-image --name "$CLUSTER" --nodes "$(echo $workers | tr ' ' ,)" \
  "hostrefresh-operator:$tag" "hostrefresh-agent:$tag" >/dev/null
stamp "images loaded"
$kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
$kubectl label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=privileged --overwrite >/dev/null
$helm upgrade --install hostrefresh charts/hostrefresh -n "$NAMESPACE" -f deploy/kind/values-kind.yaml \
  --set "image.tag=$tag" --wait --timeout 5m >/dev/null
stamp "chart installed; operator and agents ready"
echo "export KUBECONFIG=$KUBECONFIG_OUT PATH=$cp_bin:\$PATH"
