/**
 * The guest's /init (busybox sh). It mounts the pseudo file systems, loads the virtio modules in
 * dependency order, runs the test script (from the kernel command line `vt.script=<base64>` or from
 * QEMU's fw_cfg `opt/virtio-ts/script`), prints `VT-EXIT=<status>` on the console and powers off.
 *
 * Busybox runs its own applets first, so host binaries copied in (mke2fs, e2fsck, fio) are called
 * by full path: /usr/sbin/mke2fs, /usr/sbin/e2fsck, /usr/bin/fio.
 */
export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mkdir -p /proc /sys /dev /tmp /mnt /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "VT-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_mmio \\
         virtio_blk virtio_net virtio_scsi sd_mod virtio-rng virtio_console qemu_fw_cfg crc32c_generic; do
  modprobe "$m" 2>/dev/null || echo "VT-WARN module $m did not load"
done
mdev -s 2>/dev/null
script=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in vt.script=*) script=$(echo "\${arg#vt.script=}" | base64 -d) ;; esac
done
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/virtio-ts/script/raw
if [ -z "$script" ] && [ -r "$fw" ]; then script=$(cat "$fw"); fi
if [ -z "$script" ]; then
  echo "VT-NOSCRIPT: no vt.script= on the command line and no fw_cfg opt/virtio-ts/script"
  status=0
else
  echo "$script" > /tmp/test.sh
  echo "VT-RUN uptime=$(cut -d' ' -f1 /proc/uptime)"
  sh -e /tmp/test.sh
  status=$?
fi
sync
echo "VT-EXIT=$status"
poweroff -f
`;
