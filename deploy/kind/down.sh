#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster made by up.sh (KIND_CLUSTER, default hostrefresh).
# Builds nothing: without the kind binary (never built here, or built into another cache) the
# cluster's node containers are removed by the label kind gives them; without a Docker engine there
# is no cluster to delete.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
CLUSTER=${KIND_CLUSTER:-hostrefresh}
rm -f "${KIND_KUBECONFIG:-.cache/kind/$CLUSTER.kubeconfig}"
if kind_bin=$($PYTHON -m hostrefresh.controlplane kind-tools --if-built); then
  "$kind_bin/kind" delete cluster --name "$CLUSTER"
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  nodes=$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER")
  [ -z "$nodes" ] || docker rm -f $nodes >/dev/null
fi
