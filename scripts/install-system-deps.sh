#!/usr/bin/env bash
# Install the Debian packages the tests need, only those missing (idempotent, fast when done).
#   qemu-system-x86  real VMs for the handover tests (KVM when /dev/kvm works, TCG otherwise)
#   qemu-utils       qemu-img for test disks
#   libcmocka-dev    C unit-test framework for l0module
#   gcc, make        the C library, its tests and the test guest (on the machine already, normally)
#   util-linux       unshare and nsenter: the machine simulator's isolated hosts (normally there too)
#   faketime         libfaketime: the fault campaign runs an agent with its clock 30 s ahead or behind
set -euo pipefail
packages=(qemu-system-x86 qemu-utils libcmocka-dev gcc make util-linux faketime)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
