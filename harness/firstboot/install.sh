#!/bin/sh
# Install firstboot into a system, or offline into a root directory.
#
#   install.sh [--root DIR]
#
# Installs /usr/sbin/firstboot, /etc/default/firstboot (kept if present),
# /lib/systemd/system/firstboot.service, /etc/init.d/firstboot, and enables every hook:
# systemd (multi-user.target.wants link), sysvinit (rc2-5 start links; update-rc.d when
# installing into the running system) and, on busybox init systems, /etc/init.d/S45firstboot
# (run by an rcS that starts /etc/init.d/S??*). An init ignores the hooks of the others.
# Needs no root for --root DIR (run under fakeroot to get root-owned files in an archive).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ -n "$root" ]; then
  [ -d "$root" ] || { echo "install.sh: --root $root is not a directory" >&2; exit 2; }
  root=$(cd "$root" && pwd)
  [ "$root" != / ] || root=""
fi

# put SRC DEST MODE: copy without following a symlink at DEST out of the tree.
put() {
  mkdir -p "$(dirname "$root$2")"
  rm -f "$root$2"
  cp "$here/$1" "$root$2"
  chmod "$3" "$root$2"
}
put firstboot /usr/sbin/firstboot 0755
put firstboot.service /lib/systemd/system/firstboot.service 0644
put firstboot.init /etc/init.d/firstboot 0755
[ -f "$root/etc/default/firstboot" ] || put firstboot.default /etc/default/firstboot 0644
mkdir -p "$root/var/lib/firstboot"
chmod 0700 "$root/var/lib/firstboot"

# Hooks: relative links, valid both in the tree and in the booted system.
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sfn /lib/systemd/system/firstboot.service \
  "$root/etc/systemd/system/multi-user.target.wants/firstboot.service"
if [ -z "$root" ] && command -v update-rc.d >/dev/null 2>&1; then
  update-rc.d firstboot defaults >/dev/null 2>&1 || true
else
  for n in 2 3 4 5; do
    mkdir -p "$root/etc/rc$n.d"
    ln -sfn ../init.d/firstboot "$root/etc/rc$n.d/S01firstboot"
  done
fi
# busybox init only: elsewhere a second name for the LSB script would confuse insserv.
if [ "$(readlink "$root/sbin/init" 2>/dev/null | sed 's|.*/||')" = busybox ] \
  || grep -q '^::sysinit:' "$root/etc/inittab" 2>/dev/null; then
  ln -sfn firstboot "$root/etc/init.d/S45firstboot"
fi
echo "firstboot $(sed -n 's/^FIRSTBOOT_VERSION=//p' "$here/firstboot") installed${root:+ into $root}"
