#!/usr/bin/env bash
# `make images`: the operator and agent images (deploy/images/Dockerfile) with a Docker engine.
#
# The base image (ARG BASE of the Dockerfile) comes from the registry when it is reachable. When it
# is not (an offline machine), it is made here from Debian's packages with debootstrap and imported
# under the same name, so the Dockerfile never changes. Images are tagged hostrefresh-operator:<tag>
# and hostrefresh-agent:<tag> (tag: the chart's appVersion), the names the chart uses by default.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=debian:bookworm-slim
SUITE=bookworm
TAG=${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/hostrefresh/Chart.yaml)}

docker=/usr/bin/docker
if ! $docker info >/dev/null 2>&1; then
  echo "no Docker engine answers (docker info): install and start one (Debian: docker.io)" >&2
  exit 1
fi

if ! $docker image inspect "$BASE" >/dev/null 2>&1; then
  if ! $docker pull -q "$BASE" >/dev/null 2>&1; then
    echo "cannot pull $BASE: making it from Debian's packages (debootstrap $SUITE)" >&2
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase "$SUITE" "$rootfs" >/dev/null
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | $docker import -c 'CMD ["bash"]' - "$BASE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
  fi
fi

# pip in the build stage trusts what this machine trusts (see the Dockerfile).
cp /etc/ssl/certs/ca-certificates.crt deploy/images/build-ca.crt
trap 'rm -f deploy/images/build-ca.crt' EXIT
for target in operator agent; do
  $docker build -q --network host --build-arg "BASE=$BASE" --target "$target" -t "hostrefresh-$target:$TAG" -f deploy/images/Dockerfile . >/dev/null
  echo "hostrefresh-$target:$TAG"
done
