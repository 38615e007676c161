/**
 * The guest script `vmm run --engine qemu` runs without `--script`: it lists the virtio devices
 * the guest found (each disk's size, queue count and serial from /sys/block/vd*, the hwrng) and
 * reads a few bytes of entropy, then exits 0.
 */
export const DEFAULT_GUEST_SCRIPT = `echo "vmm: Linux $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPU(s), $(grep MemTotal /proc/meminfo | tr -s ' ')"
for d in /sys/block/vd*; do
  [ -e "$d" ] || continue
  n=\${d##*/}
  echo "vmm: /dev/$n $(( $(cat $d/size) / 2048 )) MiB, $(ls $d/mq | wc -l) queue(s), serial=$(cat $d/serial 2>/dev/null), read-only=$(cat $d/ro)"
done
if [ -r /sys/class/misc/hw_random/rng_current ]; then
  echo "vmm: hwrng $(cat /sys/class/misc/hw_random/rng_current): $(dd if=/dev/hwrng bs=16 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n')"
fi
`;
