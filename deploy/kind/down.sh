#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster made by up.sh (KIND_CLUSTER, default hostrefresh).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
CLUSTER=${KIND_CLUSTER:-hostrefresh}
kind=$($PYTHON -m hostrefresh.controlplane kind-tools)/kind
$kind delete cluster --name "$CLUSTER"
rm -f "${KIND_KUBECONFIG:-.cache/kind/$CLUSTER.kubeconfig}"
