#!/bin/sh
# Build a real installer CD: debian-installer's netboot kernel and initrd (the package
# pinned in images/assets.toml) on an El Torito CD for BIOS and UEFI (images/iso/build.sh),
# with the installer on the serial console, as a platform boots an install ISO.
#
#   images/iso/installer-iso.sh OUT.iso
#
# Rootless; reproducible like build.sh.
set -eu
die() { echo "installer-iso.sh: $*" >&2; exit 2; }
[ $# = 1 ] || die "usage: installer-iso.sh OUT.iso"
here=$(cd "$(dirname "$0")" && pwd)
deb=$("$here/../fetch-assets.sh" debian-installer-12-netboot-amd64) || die "cannot fetch debian-installer's netboot images"
work=$(mktemp -d "${TMPDIR:-/tmp}/installer-iso.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
d=./usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" "$d/linux" "$d/initrd.gz"
"$here/build.sh" "$work/$d/linux" "$work/$d/initrd.gz" "$1"
