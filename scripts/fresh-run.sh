#!/usr/bin/env bash
# Run the README's test command as a new user would: on a fresh clone of this repository's HEAD (the
# committed state only), in a temporary directory, with empty caches, exactly as .ci/run runs it.
#
#   scripts/fresh-run.sh              cold: a new, empty cache directory (HOSTREFRESH_CACHE_DIR, and Go's
#                                     module and build caches inside it), a new Python virtualenv, and
#                                     the project's Docker images removed (base, product, kind node)
#   scripts/fresh-run.sh CACHE_DIR    warm: the same, but with the cache directory of an earlier run
#                                     (and the images it left)
#
# What stays as the machine has it: the Debian packages (installed once by the set-up, seconds) and
# the Docker engine's installation. Prints the clone, the cache, the log, and at the end the log's last
# lines with the elapsed time. The exit status is make test's.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/hostrefresh-fresh.XXXXXX)
cache=${1:-$work/cache}
mkdir -p "$cache"
log=$work/make-test.log
echo "clone: $work/repo  cache: $cache  log: $log"

git clone -q "$src" "$work/repo" || exit 1
# CI has the design input beside the clone (../shared); the tests need nothing from it, but mirror it.
[ -d "$src/../shared" ] && ln -s "$(cd "$src/../shared" && pwd)" "$work/shared"

if [ $# -eq 0 ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  images=$(docker images --format '{{.Repository}}:{{.Tag}}' |
    grep -E '^(hostrefresh-operator|hostrefresh-agent|hostrefresh-kind-node|hostrefresh-kind/[^:]+|debian):' || true)
  [ -z "$images" ] || docker rmi -f $images >/dev/null
  docker builder prune -af >/dev/null 2>&1 || true
  echo "removed the project's Docker images and build cache"
fi

python3 -m venv "$work/venv"
export PATH="$work/venv/bin:$PATH"
export HOSTREFRESH_CACHE_DIR=$cache GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build PIP_CACHE_DIR=$cache/pip

started=$(date +%s)
(cd "$work/repo" && bash .ci/run) >"$log" 2>&1
status=$?
elapsed=$(( $(date +%s) - started ))
tail -n 25 "$log"
printf 'fresh run of %s: exit %d after %dm%02ds (%s cache) on %s, %s cores; log %s\n' \
  "$(git -C "$work/repo" rev-parse --short HEAD)" "$status" $((elapsed / 60)) $((elapsed % 60)) \
  "$([ $# -eq 0 ] && echo empty || echo given)" "$(hostname)" "$(nproc)" "$log"
exit $status
