#!/bin/sh
# Build a bootable El Torito CD (GRUB for BIOS and UEFI, via grub-mkrescue + xorriso) that
# boots a kernel and an initrd from RAM, with its menu on the serial console.
#
#   images/iso/build.sh [--append ARGS] KERNEL INITRD OUT.iso
#
# The tiny system as an initrd: `images/tiny/build.sh --format cpio [--mode server
# --modules-from DIR] tiny.cpio.gz` (the whole root in RAM, /init = its /sbin/init).
# For a real ISO shipped by Debian (for the CD-then-disk boot order test) see
# images/iso/real-iso.sh. Needs grub-common, grub-pc-bin, grub-efi-amd64-bin, xorriso and
# mtools; never root.
# Reproducible: the same inputs and SOURCE_DATE_EPOCH give the same bytes.
set -eu
die() { echo "iso/build.sh: $*" >&2; exit 2; }
append=""
while [ $# -gt 0 ]; do
  case "$1" in
    --append) append=${2:?--append needs kernel arguments}; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) break ;;
  esac
done
[ $# = 3 ] || die "usage: build.sh [--append ARGS] KERNEL INITRD OUT.iso"
kernel=$1 initrd=$2 out=$3
[ -f "$kernel" ] || die "kernel $kernel not found"
[ -f "$initrd" ] || die "initrd $initrd not found"
[ -d "$(dirname "$out")" ] || die "output directory $(dirname "$out") does not exist"
command -v grub-mkrescue >/dev/null || die "grub-mkrescue not found (apt-get install grub-common)"
[ -d /usr/lib/grub/i386-pc ] || die "GRUB BIOS files missing (apt-get install grub-pc-bin)"
[ -d /usr/lib/grub/x86_64-efi ] || die "GRUB UEFI files missing (apt-get install grub-efi-amd64-bin)"
command -v xorriso >/dev/null || die "xorriso not found (apt-get install xorriso)"
command -v mformat >/dev/null || die "mformat not found (apt-get install mtools)"

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export SOURCE_DATE_EPOCH
work=$(mktemp -d "${TMPDIR:-/tmp}/tiny-iso.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/cd/boot/grub"
cp "$kernel" "$work/cd/boot/vmlinuz"
cp "$initrd" "$work/cd/boot/initrd.gz"
cat > "$work/cd/boot/grub/grub.cfg" <<CFG
if [ "\$grub_platform" = efi ]; then
  terminal_input console
  terminal_output console
else
  serial --unit=0 --speed=115200
  terminal_input serial console
  terminal_output serial console
fi
set timeout=1
set default=0
menuentry "tiny (from RAM)" {
  linux /boot/vmlinuz console=tty0 console=ttyS0,115200 $append
  initrd /boot/initrd.gz
}
CFG
find "$work/cd" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tmpout="$out.tmp.$$"
trap 'rm -rf "$work" "$tmpout"' EXIT INT TERM
# Two El Torito images: GRUB's i386-pc cdboot + core image (BIOS) and a FAT image with
# GRUB's EFI/BOOT/BOOTX64.EFI (UEFI). Dates pinned to SOURCE_DATE_EPOCH (mtools reads it
# for the FAT image too): the same inputs give the same bytes.
stamp=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S00)
grub-mkrescue --compress=xz -o "$tmpout" "$work/cd" \
  -- -volid TINY_ISO -volume_date uuid "$stamp" -volume_date all_file_dates "=$SOURCE_DATE_EPOCH" \
  -volume_date c "=$SOURCE_DATE_EPOCH" -volume_date m "=$SOURCE_DATE_EPOCH" >"$work/log" 2>&1 || { cat "$work/log" >&2; die "grub-mkrescue failed"; }
# mformat gives the EFI image's FAT a random volume serial (boot sector bytes 39-42): pin it.
efi_lba=$(xorriso -indev "$tmpout" -report_el_torito plain 2>/dev/null | awk '/El Torito boot img/ && $7 == "UEFI" { print $NF }')
[ -n "$efi_lba" ] || die "grub-mkrescue made no UEFI El Torito image"
hex=$(printf '%08x' "$SOURCE_DATE_EPOCH") le=""
for i in 7 5 3 1; do le="$le\\0$(printf '%03o' "0x$(printf '%s' "$hex" | cut -c"$i-$((i + 1))")")"; done
printf '%b' "$le" |
  dd of="$tmpout" bs=1 seek=$((efi_lba * 2048 + 39)) conv=notrunc status=none
mv "$tmpout" "$out"
echo "iso/build.sh: $out" >&2
