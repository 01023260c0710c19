#!/usr/bin/env bash
# `make images`: the operator and agent images (deploy/images/Dockerfile) with a Docker engine.
#
# The base image (ARG BASE of the Dockerfile) comes from scripts/debian-base.sh: pulled when a
# registry serves it, made from Debian's packages otherwise. Images are tagged hostrefresh-operator:<tag>
# and hostrefresh-agent:<tag> (tag: the chart's appVersion), the names the chart uses by default.
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
for target in operator agent; do
  $docker build -q --network host --build-arg "BASE=$BASE" --target "$target" -t "hostrefresh-$target:$TAG" -f deploy/images/Dockerfile . >/dev/null
  echo "hostrefresh-$target:$TAG"
done
