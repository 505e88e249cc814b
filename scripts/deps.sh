#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks to build, test and benchmark imgtest.
# Idempotent: only missing packages are installed. Needs root (or sudo) for apt-get.
set -euo pipefail

PKGS=(
  # build: a C compiler and linker for Rust and the C libraries crates build (libssh2,
  # zstd, lzma, zlib), OpenSSL's headers
  gcc libc6-dev pkg-config libssl-dev
  # images and filesystems
  e2fsprogs fdisk gdisk cpio zstd xz-utils pigz dosfstools mtools xorriso fakeroot
  # fsmaker: depmod for imported kernels
  kmod
  # boot: GRUB, firmware, guests
  grub-pc-bin grub-efi-amd64-bin grub-common busybox-static dropbear-bin grub-rescue-pc ipxe-qemu ovmf
  # guest-side scripts: lint, HTTP clients and hashing the first-boot agent uses
  shellcheck curl wget openssl openssh-client
  # benchmark peers (grub-install: bench/fsmaker.sh's traditional way)
  bmap-tools grub2-common
  # real Debian test images (images/debian/build.sh, as root)
  debootstrap
  # the HTML report seen in a real browser (headless), the package and its manuals
  chromium dpkg-dev man-db
)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
need_qemu=0
command -v qemu-system-x86_64 >/dev/null || need_qemu=1
command -v qemu-img >/dev/null || need_qemu=1

if [ ${#missing[@]} -eq 0 ] && [ $need_qemu = 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]} ${need_qemu:+qemu}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
if [ $need_qemu = 1 ]; then
  # qemu-system must match an installed qemu-utils; some machines carry it from bookworm-backports.
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo; then
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
      $SUDO apt-get update -q >/dev/null
    fi
    $SUDO apt-get install -y -q -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
  else
    $SUDO apt-get install -y -q qemu-system-x86 qemu-utils >/dev/null
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi
