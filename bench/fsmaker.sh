#!/usr/bin/env bash
# Benchmark: fsmaker vs the traditional root way of making a bootable disk from a rootfs.
#
#   bench/fsmaker.sh [WORKDIR]     (needs root and loop devices for the traditional way)
#
# Input: a 2 GiB ext4 rootfs holding ~400 MiB of real files (/usr/bin + python3.11).
# fsmaker:      fsmaker ROOTFS OUT (sparse copy, debugfs, GRUB embedded without grub-install;
#               it also installs /lib/modules/<version>, ~90 MiB the traditional way skips).
# traditional:  sfdisk; losetup of the disk and a second loop device at the partition offset
#               (no losetup -P here); dd the rootfs; mount; grub-install --target=i386-pc
#               --boot-directory=MNT/boot /dev/loopN; copy kernel + initrd; grub.cfg; umount.
# Both boot the same cached kernel. Prints times, the ratio, and allocated bytes of both outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/fsmaker.sh: the traditional way needs root" >&2; exit 2; }

work=${1:-$(mktemp -d "${TMPDIR:-/var/tmp}/fsmaker-bench.XXXXXX")}
mkdir -p "$work"
mnt="$work/mnt"
loops=()
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

cargo build --release -q
fsmaker=$PWD/target/release/fsmaker
export FSMAKER_CACHE="$work/cache"

now() { date +%s.%N; }
alloc() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

echo "== setup (not timed)"
t0=$(now)
"$fsmaker" kernel fetch >/dev/null
kdir=$(ls -d "$FSMAKER_CACHE"/kernels/* | tail -1)
kver=$(basename "$kdir")
echo "kernel fetch (one-time, cached): $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }') for $kver"
stage="$work/stage"
mkdir -p "$stage/usr/lib" "$stage/sbin" "$stage/etc" "$stage/dev" "$stage/proc" "$stage/sys"
cp -a /usr/bin "$stage/usr/bin"
cp -a /usr/lib/python3.11 "$stage/usr/lib/python3.11"
cp images/tiny/marker/sbin/init "$stage/sbin/init"
rootfs="$work/rootfs.ext4"
truncate -s 2G "$rootfs"
mke2fs -q -t ext4 -d "$stage" "$rootfs"
rm -rf "$stage"
echo "rootfs: 2 GiB ext4, $(du -sm --apparent-size "$rootfs" | cut -f1) MiB apparent, $(mib "$(alloc "$rootfs")") allocated, $(debugfs -R stats "$rootfs" 2>/dev/null | awk -F: '/^Free blocks/ { f = $2 } /^Block count/ { c = $2 } /^Block size/ { s = $2 } END { printf "%.0f MiB used", (c - f) * s / 1048576 }')"
sync

echo "== traditional (root: sfdisk, losetup, dd, mount, grub-install, cp, umount)"
trad="$work/traditional.img"
t0=$(now)
truncate -s $(( (1 << 20) + $(stat -c %s "$rootfs") )) "$trad"
echo 'start=2048, type=83, bootable' | sfdisk -q "$trad"
disk=$(losetup -f --show "$trad"); loops+=("$disk")
part=$(losetup -f --show -o $((1 << 20)) --sizelimit "$(stat -c %s "$rootfs")" "$trad"); loops+=("$part")
dd if="$rootfs" of="$part" bs=4M conv=fsync status=none
mkdir -p "$mnt"
mount "$part" "$mnt"
grub-install --target=i386-pc --boot-directory="$mnt/boot" --modules="part_msdos ext2" "$disk" 2>/dev/null
cp "$kdir/vmlinuz" "$mnt/boot/vmlinuz-$kver"
cp "$kdir/initrd.img" "$mnt/boot/initrd.img-$kver"
uuid=$(blkid -o value -s UUID "$part")
cat > "$mnt/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
search --no-floppy --fs-uuid --set=root $uuid
menuentry 'Linux $kver' {
	linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=tty0 console=ttyS0,115200
	initrd /boot/initrd.img-$kver
}
CFG
umount "$mnt"
losetup -d "$part"; losetup -d "$disk"; loops=()
sync -f "$trad"
t_trad=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')

echo "== fsmaker (rootless)"
out="$work/fsmaker.img"
t0=$(now)
"$fsmaker" "$rootfs" "$out" >/dev/null
sync -f "$out"
t_fsm=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')

a_trad=$(alloc "$trad"); a_fsm=$(alloc "$out")
echo "== results"
printf '%-12s %8.2f s   disk %s   allocated %s\n' traditional "$t_trad" "$(mib "$(stat -c %s "$trad")")" "$(mib "$a_trad")"
printf '%-12s %8.2f s   disk %s   allocated %s   (+ /lib/modules/%s)\n' fsmaker "$t_fsm" "$(mib "$(stat -c %s "$out")")" "$(mib "$a_fsm")" "$kver"
awk -v f="$t_fsm" -v t="$t_trad" -v af="$a_fsm" -v at="$a_trad" 'BEGIN {
  printf "time ratio fsmaker/traditional: %.2fx (target <= 0.50x)\n", f / t
  printf "allocated ratio fsmaker/traditional: %.2fx (target <= 1.00x)\n", af / at
}'
