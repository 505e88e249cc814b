#!/bin/sh
# Install firstboot into a system, or offline into a root directory.
#
#   install.sh [--root DIR | --image FS.img]
#
# Installs /usr/sbin/firstboot, /etc/default/firstboot (kept if present),
# /lib/systemd/system/firstboot.service, /etc/init.d/firstboot, and enables every hook:
# systemd (multi-user.target.wants link), sysvinit (rc2-5 start links; update-rc.d when
# installing into the running system) and, on busybox init systems, /etc/init.d/S45firstboot
# (run by an rcS that starts /etc/init.d/S??*). An init ignores the hooks of the others.
# --image FS.img installs offline into an ext2/3/4 filesystem image without mounting it
# (e2fsprogs debugfs -w; for a partition inside a disk image: 'disk.img?offset=BYTES').
# Never needs root: --root DIR writes files owned by the caller (run it under fakeroot to
# record them as root's), --image records them as root's (uid 0, gid 0).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root="" image=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --image) image=${2:?--image needs a filesystem image}; shift 2 ;;
    --image=*) image=${1#--image=}; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

# --image: stage the files in a temporary tree, then copy that tree in with one debugfs batch.
if [ -n "$image" ]; then
  [ -z "$root" ] || { echo "install.sh: --root and --image exclude each other" >&2; exit 2; }
  command -v debugfs >/dev/null || { echo "install.sh: debugfs not found (apt-get install e2fsprogs)" >&2; exit 2; }
  file=${image%%\?*}
  [ -f "$file" ] || { echo "install.sh: image $file not found" >&2; exit 2; }
  stage=$(mktemp -d "${TMPDIR:-/tmp}/firstboot-image.XXXXXX")
  trap 'rm -rf "$stage"' EXIT INT TERM
  debugfs -R 'stat /' "$image" 2>/dev/null | grep -q '^Inode: 2 ' \
    || { echo "install.sh: $image is not an ext2/3/4 filesystem" >&2; exit 2; }
  # Detect busybox init in the image (as the --root path does from the tree).
  if [ "$(debugfs -R 'stat /sbin/init' "$image" 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p' | sed 's|.*/||')" = busybox ] \
    || debugfs -R 'cat /etc/inittab' "$image" 2>/dev/null | grep -q '^::sysinit:'; then
    mkdir -p "$stage/tree/etc" && printf '::sysinit:\n' > "$stage/tree/etc/inittab"
  fi
  existing_default=$(debugfs -R 'stat /etc/default/firstboot' "$image" 2>/dev/null | grep -c '^Inode:' || true)
  "$0" --root "$stage/tree" > /dev/null
  rm -f "$stage/tree/etc/inittab"
  [ "$existing_default" = 0 ] || rm -f "$stage/tree/etc/default/firstboot"
  (
    cd "$stage/tree"
    find . -type d | sed 's|^\.||' | while IFS= read -r d; do
      [ -n "$d" ] || continue
      # debugfs mkdir over an existing directory leaves an orphan inode: only new ones.
      debugfs -R "stat \"$d\"" "$image" 2>/dev/null | grep -q '^Inode:' && continue
      printf 'mkdir "%s"\nsif "%s" uid 0\nsif "%s" gid 0\n' "$d" "$d" "$d"
    done
    find . ! -type d | sed 's|^\.||' | while IFS= read -r f; do
      printf 'rm "%s"\n' "$f"
      if [ -L ".$f" ]; then
        printf 'symlink "%s" "%s"\n' "$f" "$(readlink ".$f")"
      else
        printf 'write "%s" "%s"\n' "$stage/tree$f" "$f"
        printf 'sif "%s" mode 0%o\n' "$f" "$(( 0100000 + 0$(stat -c %a ".$f") ))"
      fi
      printf 'sif "%s" uid 0\nsif "%s" gid 0\n' "$f" "$f"
    done
    printf 'sif /var/lib/firstboot mode 040700\n'
  ) > "$stage/cmds"
  debugfs -w -f "$stage/cmds" "$image" > "$stage/log" 2>&1
  got=$(debugfs -R 'cat /usr/sbin/firstboot' "$image" 2>/dev/null | cksum)
  if [ "$got" != "$(cksum < "$here/firstboot")" ]; then
    cat "$stage/log" >&2
    echo "install.sh: could not write firstboot into $image" >&2
    exit 2
  fi
  echo "firstboot $(sed -n 's/^FIRSTBOOT_VERSION=//p' "$here/firstboot") installed into $image"
  exit 0
fi
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
