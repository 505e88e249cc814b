#!/bin/sh
# Build the tiny test root filesystem, rootless, from the pinned Debian packages.
#
#   images/tiny/build.sh [OPTIONS] OUT
#
#   --mode marker|server  marker (default): busybox and an /sbin/init that prints
#                         IMGTEST-TINY-BOOTED, kernel=, root=, root_uuid=, cmdline= on the
#                         serial console and powers off.
#                         server: busybox init, DHCP, syslogd, acpid (the power button runs the
#                         clean stop, then powers off), dropbear on port 22,
#                         a getty on ttyS0 and firstboot; root locked, no host keys, empty logs,
#                         empty /etc/machine-id.
#   --format ext4|cpio    ext4 (default): a filesystem image with no kernel and no boot sector.
#                         cpio: a gzip newc initramfs holding the whole root (/init), to boot
#                         from RAM (images/iso/build.sh).
#   --size SIZE           ext4 size for mke2fs (default 256M, sparse): room for the kernel,
#                         initrd and /lib/modules that fsmaker adds (~100 MiB for a cloud kernel).
#   --uuid UUID           ext4 filesystem UUID (default fixed, for reproducible output).
#   --firstboot DIR       where firstboot's install.sh is (default harness/firstboot).
#   --no-firstboot        server mode without firstboot.
#   --modules-from DIR    copy the network/ACPI module closure from DIR/lib/modules/<ver>
#                         (an unpacked linux-image .deb): for booting without fsmaker.
#   --start SCRIPT        server mode: install SCRIPT as /etc/init.d/S90start, which the
#                         system start runs last (`S90start start`): how the hostile guests
#                         of images/tiny/hostile/ behave.
#   --customize CMD       run CMD STAGING_DIR (under the same fakeroot) before packing:
#                         how images/defects/build.sh plants its defect.
#
# Reproducible: the same inputs and SOURCE_DATE_EPOCH give the same bytes. Never needs root:
# it runs itself under fakeroot, and mke2fs -d / cpio take owners from fakeroot's view.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
die() { echo "tiny/build.sh: $*" >&2; exit 2; }

if [ -z "${FAKEROOTKEY:-}" ]; then
  command -v fakeroot >/dev/null || die "fakeroot not found (apt-get install fakeroot)"
  exec fakeroot -- "$0" "$@"
fi

mode=marker format=ext4 size=256M uuid=0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9
firstboot_dir="$repo/harness/firstboot" with_firstboot=1 modules_from="" customize="" start=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=${2:?--mode needs marker or server}; shift 2 ;;
    --format) format=${2:?--format needs ext4 or cpio}; shift 2 ;;
    --size) size=${2:?--size needs a size}; shift 2 ;;
    --uuid) uuid=${2:?--uuid needs a UUID}; shift 2 ;;
    --firstboot) firstboot_dir=${2:?--firstboot needs a directory}; shift 2 ;;
    --no-firstboot) with_firstboot=0; shift ;;
    --modules-from) modules_from=${2:?--modules-from needs a directory}; shift 2 ;;
    --customize) customize=${2:?--customize needs a command}; shift 2 ;;
    --start) start=${2:?--start needs a script}; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) break ;;
  esac
done
[ $# = 1 ] || die "usage: build.sh [--mode marker|server] [--format ext4|cpio] [OPTIONS] OUT"
out=$1
case "$mode" in marker|server) ;; *) die "--mode must be marker or server, not '$mode'" ;; esac
case "$format" in ext4|cpio) ;; *) die "--format must be ext4 or cpio, not '$format'" ;; esac
echo "$uuid" | grep -Eq '^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$' || die "bad --uuid '$uuid'"
[ -d "$(dirname "$out")" ] || die "output directory $(dirname "$out") does not exist"
if [ "$mode" = server ] && [ $with_firstboot = 1 ]; then
  [ -x "$firstboot_dir/install.sh" ] || die "no firstboot installer at $firstboot_dir/install.sh"
fi
if [ -n "$start" ]; then
  [ "$mode" = server ] || die "--start needs --mode server"
  [ -f "$start" ] || die "--start: no script at $start"
fi
if [ -n "$modules_from" ]; then
  [ -d "$modules_from/lib/modules" ] || die "--modules-from: no lib/modules in $modules_from"
fi

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/tiny-build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root="$work/root"
mkdir -p "$root"

# 1. Packages: busybox alone for the marker, dropbear and its libraries for the server.
if [ "$mode" = marker ]; then
  debs=$("$repo/images/fetch-assets.sh" busybox-static)
else
  debs=$("$repo/images/fetch-assets.sh" --role guest)
fi
for deb in $debs; do
  dpkg-deb -x "$deb" "$root"
done
# Documentation, locales, charset converters and package tooling are not needed to boot.
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" \
  "$root/usr/share/lintian" "$root/usr/share/locale" "$root/usr/share/bug" \
  "$root/usr/lib/x86_64-linux-gnu/gconv" "$root/usr/share/initramfs-tools" \
  "$root/usr/lib/dropbear" "$root/etc/ld.so.conf.d"
mkdir -p "$root/etc"
printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' > "$root/etc/ld.so.conf"

# 2. busybox applets as relative symlinks (never over a file a package shipped). Relative,
# so that nothing written into the staging tree can ever follow a link out of it.
mkdir -p "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
for path in $("$root/bin/busybox" --list-full); do
  [ -e "$root/$path" ] || [ -L "$root/$path" ] && continue
  case "$path" in
    */*/*) ln -s ../../bin/busybox "$root/$path" ;;
    */*) ln -s ../bin/busybox "$root/$path" ;;
    *) ;; # linuxrc: an initrd convention this root does not use
  esac
done

# 3. Skeleton.
for d in dev proc sys run tmp root etc/init.d var/log var/lib var/spool mnt home; do
  mkdir -p "$root/$d"
done
ln -sfn ../run "$root/var/run"
ln -sfn ../tmp "$root/var/tmp"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 660 "$root/dev/ttyS0" c 4 64

days=$((SOURCE_DATE_EPOCH / 86400))
cat > "$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
# Every account locked: only firstboot gives root a password, from the metadata service.
cat > "$root/etc/shadow" <<SHADOW
root:*:$days:0:99999:7:::
nobody:*:$days:0:99999:7:::
SHADOW
cat > "$root/etc/group" <<GROUP
root:x:0:
tty:x:5:
shadow:x:42:
nogroup:x:65534:
GROUP
chgrp 42 "$root/etc/shadow"
chmod 0640 "$root/etc/shadow"
printf '/bin/sh\n/bin/ash\n' > "$root/etc/shells"
echo tiny > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\ttiny\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
printf 'export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1="\\h:\\w\\$ "\n' > "$root/etc/profile"
: > "$root/etc/resolv.conf"
# Exists but empty: the system gets its identity at first boot.
: > "$root/etc/machine-id"
printf 'tmpfs /tmp tmpfs defaults 0 0\n' > "$root/etc/fstab"

# 4. Mode-specific files.
if [ "$mode" = marker ]; then
  cp -a --remove-destination "$here/marker/." "$root/"
else
  cp -a --remove-destination "$here/server/." "$root/"
  mkdir -p "$root/etc/dropbear"
  # Login records exist and are empty; no host keys, no logs, no histories.
  : > "$root/var/log/wtmp"
  : > "$root/var/log/btmp"
  : > "$root/var/log/lastlog"
  chmod 0600 "$root/var/log/btmp"
  if [ $with_firstboot = 1 ]; then
    "$firstboot_dir/install.sh" --root "$root" >/dev/null
  fi
  if [ -n "$start" ]; then
    cp "$start" "$root/etc/init.d/S90start"
    chmod 0755 "$root/etc/init.d/S90start"
  fi
fi

# 5. Optional kernel modules (fsmaker installs the full set on real disks).
if [ -n "$modules_from" ]; then
  for kdir in "$modules_from"/lib/modules/*; do
    kver=${kdir##*/}
    todo="virtio_pci virtio_net virtio_rng button evdev af_packet"
    seen=" "
    while :; do
      # shellcheck disable=SC2086 # a word list
      set -- $todo
      [ $# -gt 0 ] || break
      m=$1; shift; todo=$*
      case "$seen" in *" $m "*) continue ;; esac
      seen="$seen$m "
      ko=$(find "$kdir/kernel" -name "$m.ko" -o -name "$m.ko.*" | head -n1)
      [ -n "$ko" ] || continue # built into the kernel
      rel=${ko#"$modules_from"/}
      mkdir -p "$root/$(dirname "$rel")"
      cp "$ko" "$root/$rel"
      deps=$(modinfo -F depends "$ko" | tr ',' ' ')
      todo="$todo $deps"
    done
    for f in modules.order modules.builtin modules.builtin.modinfo; do
      [ -f "$kdir/$f" ] && cp "$kdir/$f" "$root/lib/modules/$kver/"
    done
    "$root/bin/busybox" depmod -b "$root" "$kver"
  done
fi

# 6. Variants plant their defect here.
if [ -n "$customize" ]; then
  sh -c "$customize \"\$1\"" customize "$root"
fi

# 7. Pack, with fixed timestamps.
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tmpout="$out.tmp.$$"
: > "$tmpout"
trap 'rm -rf "$work" "$tmpout"' EXIT INT TERM
if [ "$format" = ext4 ]; then
  hash_seed=$(echo "$uuid" | sed 's/^........-/a5a5a5a5-/')
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext4 -T default -b 4096 -m 0 \
    -L tiny-root -U "$uuid" -E "hash_seed=$hash_seed,root_owner=0:0,nodiscard" \
    -d "$root" "$tmpout" "$size" \
    || die "mke2fs failed (is --size $size big enough?)"
  # mke2fs -d copies each inode's ctime from the staging tree (now): pin them too.
  (cd "$root" && find . | sed -e 's|^\.||' -e 's|^$|/|' -e 's|.*|sif "&" ctime @'"$SOURCE_DATE_EPOCH"'|') \
    > "$work/ctime.cmds"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$work/ctime.cmds" "$tmpout" >/dev/null 2>&1 \
    || die "debugfs could not set inode times"
else
  ln -s sbin/init "$root/init"
  touch -h -d "@$SOURCE_DATE_EPOCH" "$root/init" "$root"
  (cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible) \
    | gzip -n -9 > "$tmpout"
fi
mv "$tmpout" "$out"
echo "tiny/build.sh: $mode $format -> $out" >&2
