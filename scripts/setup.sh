#!/usr/bin/env bash
# Sets up a checkout so the appliance runs (`npm run setup`) or the whole test suite runs
# (`npm run setup:test`, i.e. this script with --tests). Idempotent and fast when already done:
#   1. Debian packages (apt-get install when root on Debian; otherwise prints the exact command and stops)
#   2. npm ci (only when package-lock.json changed since the last install)
#   3. the native addon (only when native/ sources are newer than the built .node)
#   4. TypeScript build (incremental)
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) with_tests=1 ;;
    *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*"; }

# --- 1. Debian packages -------------------------------------------------------------------------
# Build: the Rust crates blake3 and zstd come from Debian's registry (crates.io is not reachable everywhere).
build_pkgs=(librust-blake3-dev librust-zstd-dev libzstd-dev zstd bzip2)
# Tests: real peers (qemu-img/qemu-io/qemu-nbd, qemu-storage-daemon, nbdkit, a real hypervisor, Prometheus, b3sum,
# file system tools (e2fsprogs, ntfs-3g, dosfstools, mtools), losetup, FUSE; python3 sets ntfs-3g xattrs) and the Linux test guest's parts (kernel, busybox, qemu-ga, cpio:
# scripts/build-guest-initramfs.sh); a throwaway one-node Ceph cluster with its RADOS Gateway for the S3 backend's
# tests (test/helpers/ceph.ts); Samba (smbd, smbclient) and nss_wrapper for the SMB 3.0 file server tests
# (test/helpers/samba.ts).
test_pkgs=(qemu-utils fdisk gdisk qemu-system-x86 qemu-system-common prometheus b3sum ntfs-3g e2fsprogs dosfstools mtools libnbd-bin python3-libnbd nasm nbdkit mount
           fuse3 linux-image-amd64 busybox-static qemu-guest-agent cpio python3
           ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base
           samba smbclient libnss-wrapper)
want=("${build_pkgs[@]}")
[ "$with_tests" = 1 ] && want+=("${test_pkgs[@]}")
command -v cargo >/dev/null 2>&1 || want+=(cargo rustc)

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/shadowvault-apt.log 2>&1; then
      apt-get update -q >>/tmp/shadowvault-apt.log 2>&1
      apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/shadowvault-apt.log 2>&1 \
        || { tail -n 20 /tmp/shadowvault-apt.log >&2; say "apt-get install failed (log: /tmp/shadowvault-apt.log)"; exit 1; }
    fi
  else
    say "missing Debian packages; install them, then run this again:"
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
fi

# --- 2. npm packages ----------------------------------------------------------------------------
# zstd-napi has no prebuilt binary reachable here: node-gyp builds it against Node's own headers.
nodedir=()
if [ -d /usr/include/node ]; then nodedir=(env npm_config_nodedir=/usr); fi
stamp=node_modules/.shadowvault-lock-hash
lock_hash=$(sha256sum package-lock.json package.json | sha256sum | cut -c1-64)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  say "npm ci"
  "${nodedir[@]}" npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > "$stamp"
fi

# --- 3. native addon ----------------------------------------------------------------------------
addon=$(ls native/*.node 2>/dev/null | head -n 1 || true)
if [ -z "$addon" ] || [ -n "$(find native/src native/Cargo.toml native/build.rs scripts/build-native.mjs -newer "$addon" 2>/dev/null | head -n 1)" ]; then
  say "building the native addon"
  npm run --silent build:native
fi

# --- 4. TypeScript --------------------------------------------------------------------------------
say "compiling TypeScript"
npx --no-install tsc -p tsconfig.json
say "ready"
