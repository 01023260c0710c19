#!/usr/bin/env bash
# Make sure the Docker engine has the Debian base image the project's images start from
# (debian:bookworm-slim): pulled when a registry serves it, otherwise made here from Debian's
# packages with debootstrap and imported under the same name, so Dockerfiles never change.
# Used by deploy/images/build.sh and deploy/kind/build-node-image.sh.
set -euo pipefail
BASE=debian:bookworm-slim
SUITE=bookworm
docker=/usr/bin/docker
$docker image inspect "$BASE" >/dev/null 2>&1 && exit 0
$docker pull -q "$BASE" >/dev/null 2>&1 && exit 0
echo "cannot pull $BASE: making it from Debian's packages (debootstrap $SUITE)" >&2
command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase "$SUITE" "$rootfs" >/dev/null
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
tar -C "$rootfs" -c . | $docker import -c 'CMD ["bash"]' - "$BASE" >/dev/null
