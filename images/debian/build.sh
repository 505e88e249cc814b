#!/bin/sh
# Build a real Debian 12 (bookworm) server root filesystem with debootstrap. NEEDS ROOT
# (debootstrap chroots and creates device nodes and owners); everything else in the
# project is rootless.
#
#   images/debian/build.sh [--variant V] [--size SIZE] [--uuid UUID] OUT.ext4
#   fsmaker OUT.ext4 disk.img          # then: imgtest run disk.img
#
# The rootfs: debootstrap --variant=minbase from http://deb.debian.org/debian with
# systemd-sysv, udev, dbus, kmod, openssh-server and wget; systemd-networkd doing DHCP on
# en*/eth*; a serial getty on ttyS0; /etc/fstab naming the root by UUID; no kernel (fsmaker
# adds its cached Debian cloud kernel, initrd and /lib/modules). Cleaned for publishing: no
# SSH host keys, every account locked, empty logs/journal/wtmp/lastlog, empty
# /etc/machine-id, no apt lists or caches, no shell histories, no resolv.conf.
#
# --variant V          exactly one defect or flavour (default clean):
#   clean                the firstboot .deb (harness/firstboot/package.sh) sets root's password
#                        from the metadata service and regenerates host keys; sshd lets root in
#                        with that password (sshd_config.d/10-firstboot.conf)
#   fixed-password       clean, but root has a real SHA-512 hash (password "imgtest-fixed")
#   baked-host-keys      clean, but the host keys debootstrap's openssh-server made are kept
#   dirty-logs           clean, but auth.log/messages login lines, a wtmp record and root's
#                        shell histories (images/defects/build.sh --plant dirty-logs)
#   authorized-key       clean, but a builder's SSH key in /root/.ssh/authorized_keys
#   shadow-backup        clean, but /var/backups/shadow.bak (as Debian's daily cron job
#                        writes it) holds a usable root hash
#   random-seed          clean, but systemd's saved entropy /var/lib/systemd/random-seed
#   dbus-machine-id      clean, but a regular /var/lib/dbus/machine-id with an id
#   unowned-script       clean, but /usr/local/sbin/provision-check, a script no package owns
#   build-logs           clean, but what an apt-get run and a builder's Python session leave
#                        (/var/log/apt/*.log, /var/log/dpkg.log, /root/.python_history)
#   private-key          clean, but a TLS key made at build time in /etc/ssl/private
#   cloud-init           Debian's cloud-init package (with its Recommends: cloud-guest-utils,
#                        eatmydata, sudo) INSTEAD of firstboot, in its default configuration:
#                        the datasource comes from the platform (NoCloud SMBIOS serial)
#   cloud-init-keep-keys cloud-init, plus /etc/cloud/cloud.cfg.d/99-keep-keys.cfg
#                        (ssh_deletekeys: false) and the baked host keys kept
#   cloud-init-off       cloud-init, switched off by /etc/cloud/cloud-init.disabled (so no
#                        password is ever set and, without host keys, sshd cannot start)
#   cloud-init-masked    cloud-init, its four units masked (linked to /dev/null)
# --size SIZE          ext4 size (default 1536M, sparse): room for fsmaker's ~100 MiB kernel.
# --extra "PKG..."     also apt-get install these packages (e.g. to make a bigger image for
#                      bench/offline.sh); cached as a tarball of their own.
# --uuid UUID          filesystem UUID (default fixed; /etc/fstab uses it).
#
# Cache: debootstrap's result is kept as a tarball per package set under
# ${IMGTEST_ASSETS:-target/test-assets}/debian/ (installed under /usr/share/imgtest:
# ~/.cache/imgtest/debian/; downloaded .debs in debs/), so rebuilding a variant only
# unpacks it (seconds). Delete the directory to refresh from the mirror.
# Reproducible: fixed UUID and hash seed, inode times clamped to SOURCE_DATE_EPOCH; the
# same cache gives the same bytes (package versions: what bookworm served when it was filled).
# Progress: one line per step on stderr (`debian/build.sh: debootstrap bookworm (...)`,
# `unpacking ...`, `configuring the server (V)`, `making the ext4 filesystem (SIZE)`), and
# nothing else unless something fails; on a terminal, the step under way is a spinner line
# in fsmaker's style (frame, elapsed time, step) that becomes the step's line when it is done.
# stdout: OUT's path, once it is complete.
# shellcheck disable=SC2086 # package lists and tar options are word lists
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
die() { step_done; echo "debian/build.sh: $*" >&2; exit 2; }

# Progress (see the header). `step WORDS` starts a step and ends the one before it.
spinner="" step_words=""
step() {
  step_done
  step_words=$*
  if [ ! -t 2 ]; then
    echo "debian/build.sh: $step_words" >&2
    return 0
  fi
  spin_frame '⠁' 0  # drawn now: every step shows, however short
  (
    start=$(date +%s)
    while :; do
      for f in ⠂ ⠄ ⡀ ⢀ ⠠ ⠐ ⠈ ⠁; do
        sleep 0.12
        spin_frame "$f" $(($(date +%s) - start))
      done
    done
  ) &
  spinner=$!
}
spin_frame() { # spin_frame FRAME SECONDS: the spinner line, redrawn in place
  if [ "$2" -lt 60 ]; then t="$2s"; else t="$(($2 / 60))m$(($2 % 60))s"; fi
  printf '\r\033[2K%s %s %s' "$1" "$t" "$step_words" >&2
}
step_done() { # the step under way is done: on a terminal its spinner becomes its line
  [ -n "$spinner" ] || return 0
  kill "$spinner" 2>/dev/null || true
  wait "$spinner" 2>/dev/null || true
  spinner=""
  printf '\r\033[2Kdebian/build.sh: %s\n' "$step_words" >&2
}
fail_log() { # fail_log LOG MESSAGE: the log's tail and the message, then exit 2
  step_done
  tail -n 20 "$1" >&2
  die "$2"
}

VARIANTS="clean fixed-password baked-host-keys dirty-logs authorized-key shadow-backup"
VARIANTS="$VARIANTS random-seed dbus-machine-id unowned-script build-logs private-key"
VARIANTS="$VARIANTS cloud-init cloud-init-keep-keys cloud-init-off cloud-init-masked"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
BASE_PKGS="systemd-sysv udev dbus kmod openssh-server wget"
CLOUD_PKGS="cloud-init cloud-guest-utils eatmydata sudo"

variant=clean size=1536M uuid=6b1c1a0e-5d2f-4c3b-9a8e-0d1e2f3a4b5c extra=""
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant=${2:?--variant needs a name}; shift 2 ;;
    --size) size=${2:?--size needs a size}; shift 2 ;;
    --uuid) uuid=${2:?--uuid needs a UUID}; shift 2 ;;
    --extra) extra=${2:?--extra needs package names}; shift 2 ;;
    -h|--help) sed -n '2,53p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) break ;;
  esac
done
[ $# = 1 ] || die "usage: build.sh [--variant V] [--size SIZE] [--uuid UUID] OUT.ext4"
out=$1
case " $VARIANTS " in *" $variant "*) ;; *) die "unknown variant '$variant' (one of: $VARIANTS)" ;; esac
echo "$uuid" | grep -Eq '^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$' || die "bad --uuid '$uuid'"
[ -d "$(dirname "$out")" ] || die "output directory $(dirname "$out") does not exist"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap chroots into the new system); run it as root or with sudo"
for t in debootstrap mke2fs chroot flock tar openssl; do
  command -v $t >/dev/null || die "$t not found (scripts/deps.sh installs it)"
done

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export SOURCE_DATE_EPOCH
if [ -f "$repo/Cargo.toml" ]; then
  assets=${IMGTEST_ASSETS:-$repo/target/test-assets}
else  # installed under /usr/share/imgtest
  assets=${IMGTEST_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/imgtest}
fi
cache="$assets/debian"
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd)

case "$variant" in cloud-init*) flavour=cloud-init ;; *) flavour=firstboot ;; esac

# Staging in RAM (/dev/shm) when TMPDIR is unset, it has 2 GiB free and allows device nodes
# and executables (the chroot needs its /dev/null): unpacking the ~300-450 MB tree is I/O bound.
tmp=${TMPDIR:-/tmp}
case ",$(findmnt -no OPTIONS /dev/shm 2>/dev/null)," in
  ,,|*,nodev,*|*,noexec,*) ;;
  *) if [ -z "${TMPDIR:-}" ] && [ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -gt 2097152 ]; then
       tmp=/dev/shm
     fi ;;
esac
work=$(mktemp -d "$tmp/debian-build.XXXXXX")
trap 'step_done; umount "$work/tree/proc" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
root="$work/root"
mkdir -p "$root"

# 1. Cached trees, as tarballs keeping owners, modes and xattrs: debootstrap of the base
#    packages; for cloud-init, that plus `apt-get install` of the cloud packages (apt orders
#    their configuration; debootstrap --include cannot configure python3 packages).
tar_opts="--numeric-owner --xattrs --xattrs-include=*"
base_key=$(printf '%s\n' "$SUITE" "$MIRROR" minbase $BASE_PKGS | sha256sum | cut -c1-12)
base_tar="$cache/base-$SUITE-$base_key.tar"
cloud_key=$(printf '%s\n' "$base_key" $CLOUD_PKGS | sha256sum | cut -c1-12)
cloud_tar="$cache/cloud-init-$SUITE-$cloud_key.tar"
tarball=$base_tar
[ $flavour = firstboot ] || tarball=$cloud_tar
flavour_tar=$tarball
if [ -n "$extra" ]; then
  extra_key=$(printf '%s\n' "$(basename "$flavour_tar")" $extra | sha256sum | cut -c1-12)
  tarball="$cache/extra-$SUITE-$extra_key.tar"
fi
pack() { # pack TARBALL: the tree into the cache, atomically
  tar -C "$work/tree" -cf "$1.tmp" $tar_opts .
  mv "$1.tmp" "$1"
  rm -rf "$work/tree"
}
apt_layer() { # apt_layer FROM_TAR TO_TAR PKG...: FROM plus `apt-get install PKG...`, cached
  from=$1 to=$2
  shift 2
  step "apt-get install $*"
  mkdir -p "$work/tree"
  tar -C "$work/tree" -xpf "$from" $tar_opts
  mount -t proc proc "$work/tree/proc"
  if ! chroot "$work/tree" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "$@" > "$work/log" 2>&1; then
    fail_log "$work/log" "apt-get install $* failed (network to $MIRROR?)"
  fi
  umount "$work/tree/proc"
  pack "$to"
}
(
  if ! flock -n 9; then
    step "waiting for another build to finish with the cache"
    flock 9
  fi
  if [ ! -f "$tarball" ] && [ ! -f "$base_tar" ]; then
    step "debootstrap $SUITE ($BASE_PKGS)"
    if ! debootstrap --variant=minbase --include="$(echo $BASE_PKGS | tr ' ' ,)" \
        --cache-dir="$cache/debs" "$SUITE" "$work/tree" "$MIRROR" > "$work/log" 2>&1; then
      fail_log "$work/log" "debootstrap failed (network to $MIRROR?)"
    fi
    pack "$base_tar"
  fi
  if [ ! -f "$flavour_tar" ]; then apt_layer "$base_tar" "$cloud_tar" $CLOUD_PKGS; fi
  if [ ! -f "$tarball" ]; then apt_layer "$flavour_tar" "$tarball" $extra; fi
  step_done
) 9>"$cache/debootstrap.lock"
step "unpacking $(basename "$tarball")"
tar -C "$root" -xpf "$tarball" $tar_opts

# 2. The server: identity, fstab, network, serial console, SSH.
step "configuring the server ($variant)"
umask 022
echo debian > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  > "$root/etc/hosts"
printf '# <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\nUUID=%s\t/\text4\terrors=remount-ro\t0\t1\n' \
  "$uuid" > "$root/etc/fstab"
chmod 0644 "$root/etc/hostname" "$root/etc/hosts" "$root/etc/fstab"
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/20-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
chroot "$root" systemctl enable systemd-networkd.service serial-getty@ttyS0.service >/dev/null 2>&1 \
  || die "systemctl enable failed in the new system"

if [ "$flavour" = firstboot ]; then
  "$repo/harness/firstboot/package.sh" "$work/pkg" >/dev/null
  cp "$work/pkg"/firstboot_*_all.deb "$root/tmp/"
  chroot "$root" sh -c 'dpkg -i /tmp/firstboot_*_all.deb' > "$work/dpkg.log" 2>&1 \
    || fail_log "$work/dpkg.log" "installing the firstboot package failed"
  rm -f "$root"/tmp/firstboot_*_all.deb
  # firstboot sets root's password from the metadata service: let root log in with it.
  printf '# root logs in with the password firstboot took from the metadata service.\nPermitRootLogin yes\n' \
    > "$root/etc/ssh/sshd_config.d/10-firstboot.conf"
fi

# 3. The variant's one defect (or flavour detail).
keep_keys=0
case "$variant" in
  fixed-password)
    hash=$(openssl passwd -6 -salt imgtestsalt imgtest-fixed)
    awk -F: -v OFS=: -v h="$hash" '$1 == "root" { $2 = h } { print }' "$root/etc/shadow" > "$work/shadow"
    cat "$work/shadow" > "$root/etc/shadow"
    ;;
  baked-host-keys) keep_keys=1 ;;
  cloud-init-off) : > "$root/etc/cloud/cloud-init.disabled" ;;
  cloud-init-masked)
    for unit in cloud-init-local cloud-init cloud-config cloud-final; do
      ln -sf /dev/null "$root/etc/systemd/system/$unit.service"
    done
    ;;
  cloud-init-keep-keys)
    keep_keys=1
    printf '# Keep the host keys baked into the image (do not regenerate per instance).\nssh_deletekeys: false\n' \
      > "$root/etc/cloud/cloud.cfg.d/99-keep-keys.cfg"
    ;;
esac

# 4. Clean for publishing (the dirty-logs defect is planted after cleaning).
[ $keep_keys = 1 ] || rm -f "$root"/etc/ssh/ssh_host_*
[ "$variant" = fixed-password ] \
  || awk -F: -v OFS=: '$2 !~ /^[*!]/ { $2 = "*" } { print }' "$root/etc/shadow" > "$work/shadow"
[ "$variant" = fixed-password ] || cat "$work/shadow" > "$root/etc/shadow"
find "$root/var/log" -type f -exec truncate -s 0 {} +
rm -rf "$root/var/log/journal"/* "$root/var/lib/systemd/random-seed"
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/resolv.conf"
rm -rf "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin "$root/var/cache/debconf"/*-old
find "$root/var/cache/apt/archives" -name '*.deb' -delete
mkdir -p "$root/var/lib/apt/lists/partial"
rm -rf "$root/tmp"/* "$root/var/tmp"/* "$root/root/.bash_history" "$root/root/.ash_history" \
  "$root/root/.lesshst" "$root/root/.viminfo" "$root/root/.wget-hsts"
# 4b. The planted defect, after cleaning.
case "$variant" in
  dirty-logs) "$repo/images/defects/build.sh" --plant dirty-logs "$root" ;;
  authorized-key)
    install -d -m 0700 "$root/root/.ssh"
    echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl builder@ci' \
      > "$root/root/.ssh/authorized_keys"
    chmod 0600 "$root/root/.ssh/authorized_keys"
    ;;
  shadow-backup)
    hash=$(openssl passwd -6 -salt imgtestsalt imgtest-fixed)
    awk -F: -v OFS=: -v h="$hash" '$1 == "root" { $2 = h } { print }' "$root/etc/shadow" \
      > "$root/var/backups/shadow.bak"
    chmod 0600 "$root/var/backups/shadow.bak"
    ;;
  random-seed)
    head -c 512 /dev/urandom > "$root/var/lib/systemd/random-seed"
    chmod 0600 "$root/var/lib/systemd/random-seed"
    ;;
  dbus-machine-id)
    mkdir -p "$root/var/lib/dbus"
    echo 0d2a4a7c6f9b4e1f8a3b5c7d9e1f2a3b > "$root/var/lib/dbus/machine-id"
    ;;
  unowned-script)
    mkdir -p "$root/usr/local/sbin"
    printf '#!/bin/sh\n# checks the image before it is published\nsystemctl is-active ssh && curl -fsS http://localhost/health\n' \
      > "$root/usr/local/sbin/provision-check"
    chmod 0755 "$root/usr/local/sbin/provision-check"
    ;;
  build-logs)
    printf 'Start-Date: 2023-11-14  22:10:01\nCommandline: apt-get install -y nginx\nEnd-Date: 2023-11-14  22:10:09\n' \
      > "$root/var/log/apt/history.log"
    echo '2023-11-14 22:10:05 install nginx:amd64 <none> 1.22.1-9' > "$root/var/log/dpkg.log"
    printf 'import os\nos.environ["DEPLOY_TOKEN"]\n' > "$root/root/.python_history"
    chmod 0600 "$root/root/.python_history"
    ;;
  private-key)
    install -d -m 0710 "$root/etc/ssl/private"
    openssl genpkey -algorithm ed25519 -out "$root/etc/ssl/private/server.key" 2>/dev/null
    chmod 0600 "$root/etc/ssl/private/server.key"
    ;;
esac

# 5. The filesystem: mke2fs -d, sparse, fixed UUID and hash seed, clamped times.
step "making the ext4 filesystem ($size)"
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true
rm -f "$out.tmp"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext4 -L debian-root -U "$uuid" \
  -E "hash_seed=$uuid,root_owner=0:0" -d "$root" "$out.tmp" "$size" >/dev/null \
  || die "mke2fs failed (is --size $size big enough?)"
# mke2fs -d copies each inode's ctime and atime from the staging tree (now): pin them too;
(cd "$root" && find . | sed -e 's|^\.||' -e 's|^$|/|' \
  -e 's|.*|sif "&" ctime @'"$SOURCE_DATE_EPOCH"'\nsif "&" atime @'"$SOURCE_DATE_EPOCH"'|') \
  > "$work/ctime.cmds"
# and mke2fs's count of bytes written depends on how the staging filesystem reports holes.
echo 'ssv kbytes_written 0' >> "$work/ctime.cmds"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$work/ctime.cmds" "$out.tmp" >/dev/null 2>&1 \
  || die "debugfs could not set inode times"
mv "$out.tmp" "$out"
step_done
echo "$out"
