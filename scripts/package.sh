#!/usr/bin/env bash
# Build the Debian package imgtest_<version>_amd64.deb: the three tools, their manuals and
# shell completions, and the scripts that build test images (/usr/share/imgtest).
#
#   scripts/package.sh [--bin-dir DIR] [OUTDIR]
#
#   --bin-dir DIR   package the imgtest, fsmaker and sparsecopy already built in DIR
#                   (default: cargo build --release, then target/release)
#   OUTDIR          where the .deb goes (default: target/debian)
#
# Made with dpkg-deb from a staging tree, not cargo-deb: dpkg-deb is on every Debian
# machine (cargo-deb would be one more tool to build from crates.io), and the package holds
# files made from the built binaries (manuals and completions from `imgtest __docs`, from
# the clap definitions) that a staging step has to make anyway. Depends: the shared
# libraries dpkg-shlibdeps finds in the binaries, and the programs the tools run.
# Reproducible: file times are SOURCE_DATE_EPOCH (default: the last commit's time).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "package.sh: $*" >&2; exit 2; }

bin_dir="" out="target/debian"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) out=$1; shift ;;
  esac
done
for tool in dpkg-deb dpkg-shlibdeps gzip; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev)"
done

if [ -z "$bin_dir" ]; then
  echo "package.sh: cargo build --release" >&2
  cargo build --release -q --bins
  bin_dir="${CARGO_TARGET_DIR:-target}/release"
fi
for b in imgtest fsmaker sparsecopy; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is not an executable (build it, or pass --bin-dir)"
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

work=$(mktemp -d "${TMPDIR:-/tmp}/imgtest-package.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root="$work/root"
install -d "$root/usr/bin" "$root/usr/share/imgtest" "$root/usr/share/man/man1" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/imgtest" "$root/DEBIAN"
for b in imgtest fsmaker sparsecopy; do
  install -m 0755 "$bin_dir/$b" "$root/usr/bin/$b"
  strip --strip-unneeded "$root/usr/bin/$b" 2>/dev/null || true
done

# What the image scripts read at run time, found beside each other under /usr/share/imgtest.
cp -R harness images "$root/usr/share/imgtest/"
find "$root/usr/share/imgtest" -name '*.lock' -delete

# Manuals and completions, from the clap definitions.
"$bin_dir/imgtest" __docs "$work/docs"
for page in "$work"/docs/man/*.1; do
  name=$(basename "$page")
  gzip -9n < "$page" > "$root/usr/share/man/man1/$name.gz"
done
for b in imgtest fsmaker sparsecopy; do
  install -m 0644 "$work/docs/completions/$b.bash" "$root/usr/share/bash-completion/completions/$b"
  install -m 0644 "$work/docs/completions/_$b" "$root/usr/share/zsh/vendor-completions/_$b"
  install -m 0644 "$work/docs/completions/$b.fish" "$root/usr/share/fish/vendor_completions.d/$b.fish"
done
gzip -9n < README.md > "$root/usr/share/doc/imgtest/README.md.gz"
# The README's links point into docs/: the pages go beside it, as docs/NAME.md.gz.
mkdir -p "$root/usr/share/doc/imgtest/docs"
for page in docs/*.md; do
  gzip -9n < "$page" > "$root/usr/share/doc/imgtest/docs/${page#docs/}.gz"
done
cat > "$root/usr/share/doc/imgtest/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: imgtest
Files: *
Copyright: the imgtest authors
License: see the source repository
COPYRIGHT

# Shared libraries (dpkg-shlibdeps reads debian/control) and the programs the tools run.
mkdir -p "$work/debian"
printf 'Source: imgtest\n\nPackage: imgtest\nArchitecture: amd64\n' > "$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -e root/usr/bin/imgtest -e root/usr/bin/fsmaker \
  -e root/usr/bin/sparsecopy 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
# qemu-system-x86 (SeaBIOS, iPXE) and qemu-utils: the VMs and their overlays; grub-pc-bin,
# grub-common (grub-mkimage), grub-efi-amd64-bin and ovmf: boot loaders and firmware;
# e2fsprogs (debugfs, mke2fs, resize2fs), busybox-static and kmod (the initrd, depmod):
# fsmaker; apt: kernel fetch (apt-get download).
depends="$shlibs, qemu-system-x86, qemu-utils, grub-pc-bin, grub-common, grub-efi-amd64-bin, ovmf, e2fsprogs, busybox-static, kmod, apt"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: imgtest
Version: $version
Architecture: amd64
Maintainer: imgtest authors <imgtest@localhost>
Installed-Size: $size
Depends: $depends
Recommends: fakeroot, cpio, xorriso, mtools, dosfstools
Suggests: debootstrap, chromium
Section: utils
Priority: optional
Description: build VM disk images and prove they are fit to publish
 sparsecopy copies disk images keeping holes; fsmaker makes a bootable disk from a bare
 ext4 root filesystem without root or loop devices; imgtest boots an image under QEMU as a
 cloud platform would (metadata service, per-boot password, SSH) and checks that its
 first boot is safe, with human, JSON, JUnit and HTML reports.
CONTROL

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/imgtest_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
