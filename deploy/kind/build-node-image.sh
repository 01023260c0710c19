#!/usr/bin/env bash
# `make node-image`: the kind node image, built offline. Prints the image name.
#
# What goes in (nothing from a container registry):
#   - a Debian base (scripts/debian-base.sh) with systemd, containerd, runc and the CNI plugins from
#     Debian's packages (node-image/Dockerfile);
#   - kubelet, kubeadm, kube-proxy, kube-controller-manager, kube-scheduler, kind, crictl and CoreDNS built from
#     their Go modules (python -m hostrefresh.controlplane kind-tools), kube-apiserver, kubectl and etcd
#     from the local control plane's build, all of one Kubernetes version;
#   - the images kubeadm runs (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd,
#     CoreDNS),
#     the pause image (node-image/pause.c) and the bridge CNI (node-image/bridge-cni/) made from those
#     binaries (node-image/components.Dockerfile) and imported into the node's containerd, as kind's own
#     node images carry them.
#
# The image is tagged hostrefresh-kind-node:<kubernetes version>-<hash of everything above>; an image
# of that tag is reused, so a warm call costs a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
docker=/usr/bin/docker
BASE=debian:bookworm-slim

if ! $docker info >/dev/null 2>&1; then
  echo "no Docker engine answers (docker info): run scripts/docker-engine.sh first" >&2
  exit 1
fi

cp_bin=$($PYTHON -m hostrefresh.controlplane build)
kind_bin=$($PYTHON -m hostrefresh.controlplane kind-tools)
read -r k8s etcd coredns < <($PYTHON -c 'from hostrefresh.controlplane import versions as v
print(v.KUBERNETES, v.ETCD.lstrip("v"), v.COREDNS)')
key=$( { basename "$(dirname "$cp_bin")"; basename "$(dirname "$kind_bin")"; find deploy/kind/node-image -type f | sort | xargs sha256sum; } | sha256sum | cut -c1-12)
NODE_IMAGE=hostrefresh-kind-node:$k8s-$key
if $docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  echo "$NODE_IMAGE"
  exit 0
fi

bash scripts/debian-base.sh
started=$(date +%s)
ctx=$(mktemp -d)
builder=""
cleanup() {
  rm -rf "$ctx"
  [ -n "$builder" ] && $docker rm -f "$builder" >/dev/null 2>&1 || true
}
trap cleanup EXIT
mkdir -p "$ctx/bin"
cp -r deploy/kind/node-image/. "$ctx/"
for b in kubelet kubeadm kube-proxy kube-controller-manager kube-scheduler crictl coredns; do cp "$kind_bin/$b" "$ctx/bin/"; done
for b in kube-apiserver kubectl etcd; do cp "$cp_bin/$b" "$ctx/bin/"; done
gcc -std=c11 -Wall -Wextra -Werror -O2 -static -o "$ctx/bin/pause" deploy/kind/node-image/pause.c

# The images kubeadm and the node need, in the image repository the cluster's kubeadm configuration
# names (node-image/kubeadm-patches.yaml): locally made images never pass for a registry's.
REPO=hostrefresh-kind
build() { # TARGET TAG [BINARY]
  $docker build -q --network host --build-arg "BASE=$BASE" --build-arg "BINARY=${3:-}" --target "$1" -t "$2" \
    -f "$ctx/components.Dockerfile" "$ctx" >/dev/null || { echo "building image $2 failed" >&2; exit 1; }
  images+=("$2")
}
images=()
build component "$REPO/kube-apiserver:$k8s" kube-apiserver
build component "$REPO/kube-controller-manager:$k8s" kube-controller-manager
build component "$REPO/kube-scheduler:$k8s" kube-scheduler
build component "$REPO/etcd:$etcd-0" etcd
build kube-proxy "$REPO/kube-proxy:$k8s"
build coredns "$REPO/coredns:$coredns"
build pause "$REPO/pause:3.10.1"
build bridge-cni "$REPO/bridge-cni:1"
$docker save -o "$ctx/images.tar" "${images[@]}"

# The node's file system, then its containerd's image store: containerd runs once in a container of
# that image, imports the images (unpacked on first use, like kind's node images), and the container
# is committed as the node image.
$docker build -q --network host --build-arg "BASE=$BASE" --build-arg "KUBERNETES_VERSION=$k8s" \
  -t "$NODE_IMAGE-rootfs" "$ctx" >/dev/null
builder=$($docker run -d --privileged --entrypoint sleep -v "$ctx/images.tar:/images.tar:ro" "$NODE_IMAGE-rootfs" infinity)
$docker exec "$builder" bash -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &'
for _ in $(seq 60); do
  $docker exec "$builder" ctr version >/dev/null 2>&1 && break
  sleep 1
done
$docker exec "$builder" ctr --namespace=k8s.io images import --no-unpack --digests /images.tar >/dev/null
$docker exec "$builder" pkill -x containerd
for _ in $(seq 30); do $docker exec "$builder" pgrep -x containerd >/dev/null || break; sleep 1; done
$docker exec "$builder" rm -f /var/log/containerd-build.log
$docker commit \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
  "$builder" "$NODE_IMAGE" >/dev/null
$docker rm -f "$builder" >/dev/null
builder=""
$docker rmi "$NODE_IMAGE-rootfs" >/dev/null
echo "node image $NODE_IMAGE built in $(( $(date +%s) - started ))s" >&2
echo "$NODE_IMAGE"
