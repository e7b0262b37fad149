#!/usr/bin/env bash
# Let this host run linux/arm64 programs under qemu (for `nox -s build-arm64`), as root:
#   - Debian's qemu-user-static and binfmt-support (they register qemu-aarch64 with the
#     F flag: the kernel opens the interpreter once, containers and chroots need no copy),
#   - the binfmt_misc file system mounted (a fresh Debian 12 host has it unmounted),
#   - the qemu-aarch64 entry enabled (system-wide: every process of this host then runs
#     aarch64 binaries through qemu).
# Idempotent; a no-op when all is in place. Not part of host-setup.sh: the emulated
# build is its own session and CI does not run it (docs/multiarch.md).
set -euo pipefail

entry=qemu-aarch64
binfmt=/proc/sys/fs/binfmt_misc

if [ "$(id -u)" -ne 0 ]; then
  echo "emulation-setup: must run as root (installs packages, mounts binfmt_misc)." >&2
  echo "                 run: sudo bash scripts/emulation-setup.sh" >&2
  exit 1
fi

need=()
for pkg in qemu-user-static binfmt-support debootstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "emulation-setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ ! -e "$binfmt/register" ]; then
  echo "emulation-setup: mounting binfmt_misc on $binfmt"
  mount -t binfmt_misc binfmt_misc "$binfmt"
fi
if [ ! -e "$binfmt/$entry" ] || [ "$(head -n1 "$binfmt/$entry")" != enabled ]; then
  echo "emulation-setup: update-binfmts --enable $entry"
  update-binfmts --enable "$entry"
fi
echo "emulation-setup: $entry $(head -n1 "$binfmt/$entry"), $(grep '^flags:' "$binfmt/$entry")"
