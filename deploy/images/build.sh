#!/usr/bin/env bash
# `make images`: the operator and agent images (deploy/images/Dockerfile) with a Docker engine.
#
# The base image (ARG BASE of the Dockerfile) comes from scripts/debian-base.sh: pulled when a
# registry serves it, made from Debian's packages otherwise. Images are tagged hostrefresh-operator:<tag>
# and hostrefresh-agent:<tag> (tag: the chart's appVersion), the names the chart uses by default, and
# with the immutable <tag>-g<commit>[-dirty.<hash>] of deploy/images/tag.sh, which it prints; the OCI
# labels org.opencontainers.image.version and .revision say the same.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=debian:bookworm-slim
TAG=${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/hostrefresh/Chart.yaml)}

docker=/usr/bin/docker
if ! $docker info >/dev/null 2>&1; then
  echo "no Docker engine answers (docker info): install and start one (Debian: docker.io)" >&2
  exit 1
fi

bash scripts/debian-base.sh

# pip in the build stage trusts what this machine trusts (see the Dockerfile).
cp /etc/ssl/certs/ca-certificates.crt deploy/images/build-ca.crt
trap 'rm -f deploy/images/build-ca.crt' EXIT
IMMUTABLE=$(bash deploy/images/tag.sh)
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for target in operator agent; do
  $docker build -q --network host --build-arg "BASE=$BASE" --target "$target" \
    --label "org.opencontainers.image.version=$TAG" --label "org.opencontainers.image.revision=$REVISION" \
    -t "hostrefresh-$target:$TAG" -t "hostrefresh-$target:$IMMUTABLE" -f deploy/images/Dockerfile . >/dev/null
  echo "hostrefresh-$target:$IMMUTABLE"
done
