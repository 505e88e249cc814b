#!/bin/sh
# Build the firstboot packages, rootless and reproducibly (SOURCE_DATE_EPOCH):
#
#   harness/firstboot/package.sh OUTDIR
#
# Writes OUTDIR/firstboot_<ver>_all.deb (dpkg-deb --root-owner-group) and
# OUTDIR/firstboot-<ver>.tar.gz (the files plus install.sh [--root DIR]), and prints both paths.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "package.sh: $*" >&2; exit 2; }
[ $# = 1 ] || die "usage: package.sh OUTDIR"
[ -d "$1" ] || mkdir -p "$1" || die "cannot create $1"
out=$(cd "$1" && pwd)
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
ver=$(sed -n 's/^FIRSTBOOT_VERSION=//p' "$here/firstboot")
[ -n "$ver" ] || die "no FIRSTBOOT_VERSION in $here/firstboot"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 1700000000)}
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/firstboot-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
umask 022

# .deb: the files in place, hooks enabled by the maintainer scripts.
deb="$work/deb"
mkdir -p "$deb/DEBIAN" "$deb/usr/sbin" "$deb/lib/systemd/system" "$deb/etc/init.d" \
  "$deb/etc/default" "$deb/usr/share/doc/firstboot"
cp "$here/firstboot" "$deb/usr/sbin/firstboot"
cp "$here/firstboot.service" "$deb/lib/systemd/system/firstboot.service"
cp "$here/firstboot.init" "$deb/etc/init.d/firstboot"
cp "$here/firstboot.default" "$deb/etc/default/firstboot"
chmod 0755 "$deb/usr/sbin/firstboot" "$deb/etc/init.d/firstboot"
chmod 0644 "$deb/lib/systemd/system/firstboot.service" "$deb/etc/default/firstboot"
printf '/etc/default/firstboot\n/etc/init.d/firstboot\n' > "$deb/DEBIAN/conffiles"
cat > "$deb/DEBIAN/control" <<CONTROL
Package: firstboot
Version: $ver
Architecture: all
Maintainer: imgtest <imgtest@localhost>
Section: admin
Priority: optional
Depends: busybox | curl | wget
Description: first-boot agent for cloud images
 On first boot, sets the initial password served by the metadata service
 (169.254.169.254) for the configured accounts, regenerates SSH host keys,
 installs SSH public keys, sets the hostname, truncates logs, then disables
 itself. Accounts stay locked if the metadata service never answers.
CONTROL
cat > "$deb/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  mkdir -p /var/lib/firstboot
  chmod 0700 /var/lib/firstboot
  if [ ! -e /var/lib/firstboot/done ]; then
    mkdir -p /etc/systemd/system/multi-user.target.wants
    ln -sfn /lib/systemd/system/firstboot.service \
      /etc/systemd/system/multi-user.target.wants/firstboot.service
    if command -v update-rc.d >/dev/null 2>&1; then
      update-rc.d firstboot defaults >/dev/null 2>&1 || true
    fi
    if [ "$(readlink /sbin/init 2>/dev/null | sed 's|.*/||')" = busybox ] \
      || grep -q '^::sysinit:' /etc/inittab 2>/dev/null; then
      ln -sfn firstboot /etc/init.d/S45firstboot
    fi
  fi
fi
exit 0
POSTINST
cat > "$deb/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
case "$1" in
  remove|purge)
    rm -f /etc/systemd/system/multi-user.target.wants/firstboot.service /etc/init.d/S45firstboot
    if command -v update-rc.d >/dev/null 2>&1; then
      update-rc.d firstboot remove >/dev/null 2>&1 || true
    fi
    rm -f /etc/rc[0-6S].d/[SK][0-9][0-9]firstboot
    [ "$1" != purge ] || rm -rf /var/lib/firstboot
    ;;
esac
exit 0
POSTRM
chmod 0755 "$deb/DEBIAN/postinst" "$deb/DEBIAN/postrm"
printf 'firstboot %s: see /usr/sbin/firstboot --help.\n' "$ver" > "$deb/usr/share/doc/firstboot/README"
find "$deb" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
debfile="$out/firstboot_${ver}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$deb" "$debfile.tmp" >/dev/null
mv "$debfile.tmp" "$debfile"

# Tarball: firstboot-<ver>/ with install.sh.
name="firstboot-$ver"
tdir="$work/tar/$name"
mkdir -p "$tdir"
for f in firstboot firstboot.service firstboot.init firstboot.default install.sh; do
  cp "$here/$f" "$tdir/$f"
done
chmod 0755 "$tdir/firstboot" "$tdir/firstboot.init" "$tdir/install.sh"
chmod 0644 "$tdir/firstboot.service" "$tdir/firstboot.default"
find "$work/tar" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tgz="$out/$name.tar.gz"
(cd "$work/tar" && tar --sort=name --owner=0 --group=0 --numeric-owner --format=gnu \
  --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name") | gzip -n -9 > "$tgz.tmp"
mv "$tgz.tmp" "$tgz"
echo "$debfile"
echo "$tgz"
