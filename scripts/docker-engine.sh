#!/usr/bin/env bash
# A Docker engine for `make images`: Debian's docker.io (and debootstrap, for an offline base image),
# installed when missing, and dockerd started when none answers. Machines without systemd (containers,
# CI sandboxes) get a dockerd in the background, its log in $HOSTREFRESH_CACHE_DIR (default
# ~/.cache/hostrefresh)/dockerd.log. Idempotent: quick when the engine already answers.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in docker.io debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's own client, not another one earlier on PATH.
docker=/usr/bin/docker
if $docker info >/dev/null 2>&1; then
  exit 0
fi
if [ -d /run/systemd/system ]; then
  $sudo systemctl start docker
else
  cache=${HOSTREFRESH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hostrefresh}
  mkdir -p "$cache"
  echo "starting dockerd (log: $cache/dockerd.log)"
  $sudo setsid /usr/sbin/dockerd >"$cache/dockerd.log" 2>&1 < /dev/null &
fi
for _ in $(seq 60); do
  $docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not answer within 60 s; see its log" >&2
exit 1
