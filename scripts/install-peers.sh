#!/usr/bin/env bash
# Installs the Debian packages that the interop tests and side-by-side benchmarks use as peers
# (qemu-img, qemu-io, qemu-nbd, qemu-storage-daemon, qemu-system-x86_64, ...). Needs root.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-peers: run as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  qemu-utils qemu-system-x86 busybox-static cpio fio e2fsprogs nbdkit kmod util-linux chromium >/dev/null
qemu-img --version | head -1
