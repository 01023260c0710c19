#!/usr/bin/env bash
# A Docker engine for `make images`: Debian's docker.io (and debootstrap, for an offline base image),
# installed when missing, and dockerd started when none answers. Machines without systemd (containers,
# CI sandboxes) get a dockerd in the background, its log in $HOSTREFRESH_CACHE_DIR (default
# ~/.cache/hostrefresh)/dockerd.log. Idempotent: quick when the engine already answers.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in docker.io debootstrap jq; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's own client, not another one earlier on PATH.
docker=/usr/bin/docker

# Machines whose capability bounding set lacks some capability (sandboxes without CAP_SYS_RESOURCE)
# cannot start privileged containers with plain runc ("unable to apply caps"); kind nodes are
# privileged containers. There, Docker's default runtime becomes the wrapper that drops what the
# bounding set lacks (deploy/kind/node-image/files/usr/local/bin/hostrefresh-runc).
restart=""
bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)
if [ "$((0x$bnd))" -ne "$(( (1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1 ))" ]; then
  wrapper=/usr/local/bin/hostrefresh-runc
  src="$(dirname "$0")/../deploy/kind/node-image/files/usr/local/bin/hostrefresh-runc"
  if ! cmp -s "$src" "$wrapper"; then
    $sudo install -m 0755 "$src" "$wrapper"
  fi
  conf=/etc/docker/daemon.json
  current=$( [ -s $conf ] && cat $conf || echo '{}')
  wanted=$(echo "$current" | jq --arg w "$wrapper" '.runtimes["hostrefresh-runc"] = {path: $w} | ."default-runtime" = "hostrefresh-runc"')
  if [ "$(echo "$current" | jq -S .)" != "$(echo "$wanted" | jq -S .)" ]; then
    echo "Docker's default runtime: $wrapper (the capability bounding set is $bnd)"
    $sudo mkdir -p /etc/docker
    echo "$wanted" | $sudo tee $conf >/dev/null
    restart=1
  fi
fi

if $docker info >/dev/null 2>&1; then
  [ -z "$restart" ] && exit 0
  if [ -d /run/systemd/system ]; then
    $sudo systemctl restart docker
  else
    # (once, when the runtime is first configured: its containers stop with it)
    $sudo pkill -x dockerd || true
    for _ in $(seq 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
    if pgrep -x dockerd >/dev/null; then
      echo "dockerd did not stop within 30 s; restart it by hand to use $conf" >&2
      exit 1
    fi
  fi
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
