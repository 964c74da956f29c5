#!/usr/bin/env bash
# Builds the Linux test guest's initramfs from this machine's Debian packages (linux-image-amd64,
# busybox-static, qemu-guest-agent): busybox, the kernel modules for virtio-pci/virtio-blk/virtio-console/ext4
# and their dependencies (modules.dep; skipped when built in), qemu-ga with its shared libraries (ldd), and
# scripts/guest/init.sh as /init. The result is cached: build/guest/initramfs-<key>.cpio.gz, where the key
# hashes every input (this script, init.sh, the kernel, busybox, qemu-ga), so it is built once per machine.
# Prints two lines: KERNEL=<path to the kernel> and INITRAMFS=<path to the cpio>.
#
# Boot speed under TCG (no KVM here): the initramfs is left uncompressed, and when the kernel has CONFIG_PVH
# the uncompressed vmlinux is extracted once (build/guest/vmlinux-<key>) and given to QEMU instead of the
# bzImage: QEMU then enters the kernel directly (PVH), skipping the emulated xz decompression, which was two
# thirds of the boot on the 2-core CI machine. Without CONFIG_PVH (or an unknown compression) KERNEL is the
# bzImage as before.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
init="$root/scripts/guest/init.sh"
# Newest kernel that has its modules installed.
kver=""
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
  v=${k#/boot/vmlinuz-}
  if [ -f "/lib/modules/$v/modules.dep" ]; then kver=$v; break; fi
done
[ -n "$kver" ] || { echo "no /boot/vmlinuz-* with /lib/modules/<version>: sudo apt-get install -y linux-image-amd64" >&2; exit 1; }
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
busybox=$(command -v busybox) || { echo "busybox missing: sudo apt-get install -y busybox-static" >&2; exit 1; }
qga=$(command -v qemu-ga || echo /usr/sbin/qemu-ga)
[ -x "$qga" ] || { echo "qemu-ga missing: sudo apt-get install -y qemu-guest-agent" >&2; exit 1; }
command -v cpio >/dev/null || { echo "cpio missing: sudo apt-get install -y cpio" >&2; exit 1; }

key=$(cat "$0" "$init" "$kernel" "$busybox" "$qga" | sha256sum | cut -c1-16)
out="$root/build/guest/initramfs-$key.cpio"
mkdir -p "$root/build/guest"

# The vmlinux inside the bzImage: the first compressed stream (xz, zstd or gzip) that unpacks to an ELF file.
extract_vmlinux() {
  local image=$1 dest=$2 sig tool pos
  for kind in xz zstd gzip; do
    case $kind in
      xz) sig='\xfd7zXZ\x00'; tool='xz -dc --single-stream' ;;
      zstd) sig='\x28\xb5\x2f\xfd'; tool='zstd -qdc' ;;
      gzip) sig='\x1f\x8b\x08'; tool='gzip -dc' ;;
    esac
    command -v "${tool%% *}" >/dev/null || continue
    for pos in $(LC_ALL=C grep -obUaP "$sig" "$image" | cut -d: -f1 | head -n 4); do
      tail -c +$((pos + 1)) "$image" | $tool > "$dest.tmp" 2>/dev/null || true
      if [ "$(head -c 4 "$dest.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then mv "$dest.tmp" "$dest"; return 0; fi
    done
  done
  rm -f "$dest.tmp"
  return 1
}
vmlinux="$root/build/guest/vmlinux-$key"
if [ ! -f "$vmlinux" ] && grep -qx 'CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null; then
  extract_vmlinux "$kernel" "$vmlinux" || echo "note: no vmlinux extracted from $kernel; booting the bzImage" >&2
fi
if [ -f "$vmlinux" ]; then echo "KERNEL=$vmlinux"; else echo "KERNEL=$kernel"; fi
if [ -f "$out" ]; then echo "INITRAMFS=$out"; exit 0; fi

# Modules in load order: each wanted module after its dependencies (modules.dep lists them, deepest last).
# crc32c_generic stands in for the soft dependency "crypto-crc32c" of ext4 and jbd2.
wanted=(crc32c_generic virtio virtio_ring virtio_pci virtio_blk virtio_console ext4)
declare -A seen=()
order=()
add_module() {
  local name=$1 line path deps d
  line=$(grep -E "/${name//_/[_-]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n 1 || true)
  if [ -z "$line" ]; then
    grep -qE "/${name//_/[_-]}\.ko" "$moddir/modules.builtin" && return 0
    echo "module $name is neither in $moddir/modules.dep nor built in" >&2; exit 1
  fi
  path=${line%%:*}
  [ -n "${seen[$path]:-}" ] && return 0
  deps=${line#*:}
  for d in $deps; do
    d=$(basename "$d"); d=${d%%.ko*}; add_module "$d"
  done
  seen[$path]=1
  order+=("$path")
}
for m in "${wanted[@]}"; do add_module "$m"; done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,etc,proc,sys,dev,run,tmp,data,lib/modules}
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$stage/bin/$applet"; done
: > "$stage/etc/modules-order"
for p in "${order[@]}"; do
  case "$p" in
    *.ko) cp "$moddir/$p" "$stage/lib/modules/" ;;
    *.ko.xz) xz -dc "$moddir/$p" > "$stage/lib/modules/$(basename "${p%.xz}")" ;;
    *.ko.zst) zstd -qdc "$moddir/$p" > "$stage/lib/modules/$(basename "${p%.zst}")" ;;
    *) echo "unknown module compression: $p" >&2; exit 1 ;;
  esac
  b=$(basename "$p"); echo "${b%%.ko*}.ko" >> "$stage/etc/modules-order"
done
cp "$qga" "$stage/sbin/qemu-ga"
for lib in $(ldd "$qga" | grep -oE '/[^ ]+\.so[^ ]*'); do
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$lib" "$stage$lib"
done
cp "$init" "$stage/init"
chmod 755 "$stage/init"
(cd "$stage" && find . | cpio -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
echo "INITRAMFS=$out"
