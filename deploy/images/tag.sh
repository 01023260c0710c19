#!/usr/bin/env bash
# The images' immutable tag: <chart appVersion>-g<commit>, and -dirty.<hash of the changes> when the
# working tree differs from that commit (so that a rebuild after an edit never reuses a tag).
# `make images` tags each image with it and with the bare appVersion; the kind cluster installs this one.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/hostrefresh/Chart.yaml)
if ! commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then
  echo "$version-nogit"
  exit 0
fi
changes=$( { git diff HEAD; git ls-files --others --exclude-standard | sort | xargs -r sha256sum; } 2>/dev/null | sha256sum | cut -c1-8)
if [ -n "$(git status --porcelain --untracked-files=normal 2>/dev/null)" ]; then
  echo "$version-g$commit-dirty.$changes"
else
  echo "$version-g$commit"
fi
