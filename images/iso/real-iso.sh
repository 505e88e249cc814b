#!/bin/sh
# Print the path of a real bootable ISO shipped in a Debian package: GRUB's rescue CD
# (grub-rescue-pc: boots to a "grub>" prompt; with -nographic SeaBIOS mirrors it to serial).
# The CD-then-disk boot order test attaches it as a CD in front of a bootable disk.
set -eu
iso=/usr/lib/grub-rescue/grub-rescue-cdrom.iso
if [ ! -f "$iso" ]; then
  echo "real-iso.sh: $iso not found (apt-get install grub-rescue-pc)" >&2
  exit 2
fi
echo "$iso"
