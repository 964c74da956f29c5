#!/bin/sh
# /init of the Linux test guest (built into the initramfs by scripts/build-guest-initramfs.sh).
# Loads the virtio and ext4 modules, mounts /dev/vda (ext4, made by the host) on /data, starts qemu-ga on
# the virtio-serial port org.qemu.guest_agent.0, then writes checksummed files forever:
#   /data/files/fNNNNNN = payload (random bytes) + trailer "SVSUM <sha256 of payload hex>\n"
# each written under /data/files/.tmp, synced, renamed to its final name, synced again. At most 64 files
# are kept (the oldest is removed), so the walk exercises create, rename and delete.
# Markers on the console (ttyS0) tell the host how far the boot got: "SVGUEST READY" (qemu-ga started),
# "SVGUEST WROTE 8" (eight files written since boot), "SVGUEST FAIL <why>".
# `svpace=S` on the kernel command line: after those eight files, wait S seconds (fractions allowed) between
# files, so that a guest kept through a long test idles instead of keeping an emulated CPU busy (default: no wait).
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /var/run /tmp /data
fail() { echo "SVGUEST FAIL $*" > /dev/console; sleep 100000; }
for m in $(cat /etc/modules-order); do insmod "/lib/modules/$m" || fail "insmod $m"; done
# Wait for the disk and the port (virtio probes asynchronously).
i=0
while [ ! -b /dev/vda ] || [ -z "$(ls /sys/class/virtio-ports 2>/dev/null)" ]; do
  i=$((i + 1)); [ $i -gt 200 ] && fail "no /dev/vda or virtio port"; sleep 0.05
done
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
  ln -sf "../$(basename "$p")" "/dev/virtio-ports/$(cat "$p/name")"
done
mount -t ext4 /dev/vda /data || fail "mount /dev/vda"
mkdir -p /data/files
qemu-ga --daemonize --method=virtio-serial --path=/dev/virtio-ports/org.qemu.guest_agent.0 \
  --pidfile=/run/qemu-ga.pid --statedir=/run || fail "qemu-ga"
echo "SVGUEST READY" > /dev/console
pace=$(sed -n 's/.*svpace=\([0-9.]*\).*/\1/p' /proc/cmdline)
n=$(cat /data/files/.next 2>/dev/null || echo 0)
wrote=0
while true; do
  size=$(( (RANDOM % 48) * 1024 + RANDOM % 1024 + 1 ))
  head -c "$size" /dev/urandom > /data/files/.tmp
  sum=$(sha256sum /data/files/.tmp | cut -d' ' -f1)
  echo "SVSUM $sum" >> /data/files/.tmp
  sync
  name=$(printf 'f%06d' "$n")
  mv /data/files/.tmp "/data/files/$name"
  old=$(printf 'f%06d' $((n - 64)))
  rm -f "/data/files/$old"
  n=$((n + 1))
  echo "$n" > /data/files/.next
  sync
  wrote=$((wrote + 1))
  [ "$wrote" = 8 ] && echo "SVGUEST WROTE 8" > /dev/console
  [ -n "$pace" ] && [ "$wrote" -ge 8 ] && sleep "$pace"
done
