#!/bin/sh
# Build a variant of the tiny server rootfs with exactly one planted defect, rootless.
#
#   images/defects/build.sh VARIANT OUT [images/tiny/build.sh options...]
#
# VARIANT              the one defect (everything else is the clean tiny server)
#   fixed-password     root has a real SHA-512 password hash (password "imgtest-fixed")
#   dirty-logs         /var/log/auth.log and messages with login lines, a wtmp login record,
#                      root's .ash_history and .bash_history
#   baked-host-keys    dropbear host keys (rsa, ecdsa, ed25519) in /etc/dropbear
#   test-scripts       /root/test.sh and /usr/local/bin/run-tests.sh left behind
#   no-firstboot       firstboot not installed
#   machine-id         /etc/machine-id set
#   no-root            the rootfs is clean: the defect is the kernel command line, made by
#                      fsmaker: `fsmaker --append root=UUID=00000000-0000-0000-0000-000000000000
#                      ROOTFS OUT.img` (its initrd uses the last root= given), so the root is
#                      never found and the initrd's deadline message (or a panic) follows.
#
# Internally the defect is planted into the staging tree by `build.sh --plant VARIANT DIR`,
# which images/tiny/build.sh runs under its fakeroot before packing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "defects/build.sh: $*" >&2; exit 2; }
VARIANTS="fixed-password dirty-logs baked-host-keys test-scripts no-firstboot machine-id no-root"

# wtmp_record USER LINE HOST EPOCH: one x86_64 glibc struct utmp (384 bytes), USER_PROCESS.
wtmp_record() {
  le32() { # a number as 4 little-endian bytes
    n=$1 i=0
    while [ $i -lt 4 ]; do
      printf '%b' "\\0$(printf %o $((n % 256)))"
      n=$((n / 256)); i=$((i + 1))
    done
  }
  field() { # string padded with NULs to N bytes
    printf '%s' "$1"
    head -c $(($2 - ${#1})) /dev/zero
  }
  le32 7          # ut_type USER_PROCESS (short) + padding
  le32 4242       # ut_pid
  field "$2" 32   # ut_line
  field ts/0 4    # ut_id
  field "$1" 32   # ut_user
  field "$3" 256  # ut_host
  le32 0          # ut_exit
  le32 0          # ut_session
  le32 "$4"       # ut_tv.tv_sec
  le32 0          # ut_tv.tv_usec
  field "" 16     # ut_addr_v6
  field "" 20     # unused
}

plant() {
  variant=$1 root=$2
  epoch=${SOURCE_DATE_EPOCH:-1700000000}
  case "$variant" in
    fixed-password)
      hash=$("$root/bin/busybox" mkpasswd -m sha512 -S imgtestsalt imgtest-fixed)
      awk -F: -v OFS=: -v h="$hash" '$1 == "root" { $2 = h } { print }' "$root/etc/shadow" \
        > "$root/etc/shadow.new"
      cat "$root/etc/shadow.new" > "$root/etc/shadow"
      rm "$root/etc/shadow.new"
      ;;
    dirty-logs)
      cat > "$root/var/log/auth.log" <<'LOG'
Nov 14 22:10:01 builder sshd[811]: Accepted password for root from 192.0.2.10 port 52814 ssh2
Nov 14 22:10:01 builder sshd[811]: pam_unix(sshd:session): session opened for user root(uid=0)
Nov 14 22:12:45 builder sshd[811]: pam_unix(sshd:session): session closed for user root
LOG
      echo "Nov 14 22:10:01 builder dropbear[810]: Password auth succeeded for 'root' from 192.0.2.10:52814" \
        > "$root/var/log/messages"
      wtmp_record root pts/0 192.0.2.10 "$epoch" > "$root/var/log/wtmp"
      printf 'apt-get install -y nginx\ncat /etc/shadow\nexit\n' > "$root/root/.ash_history"
      printf 'export TOKEN=build-secret\n./run-tests.sh\nhistory -c\n' > "$root/root/.bash_history"
      chmod 0600 "$root/root/.ash_history" "$root/root/.bash_history"
      ;;
    baked-host-keys)
      command -v dropbearkey >/dev/null || die "dropbearkey not found (apt-get install dropbear-bin)"
      for t in rsa ecdsa ed25519; do
        dropbearkey -t "$t" -f "$root/etc/dropbear/dropbear_${t}_host_key" >/dev/null 2>&1
      done
      ;;
    test-scripts)
      printf '#!/bin/sh\n# smoke test used while building the image\ncurl -fsS http://localhost/ && echo OK\n' \
        > "$root/root/test.sh"
      mkdir -p "$root/usr/local/bin"
      # shellcheck disable=SC2016 # the script's own $t
      printf '#!/bin/sh\nset -e\nfor t in /opt/tests/*.sh; do sh "$t"; done\n' \
        > "$root/usr/local/bin/run-tests.sh"
      chmod 0755 "$root/root/test.sh" "$root/usr/local/bin/run-tests.sh"
      ;;
    machine-id)
      echo 5c4e9d2a7b1f4e08a3c6d9e2f1b0a7c4 > "$root/etc/machine-id"
      ;;
    no-firstboot|no-root) ;;
    *) die "unknown variant '$variant' (one of: $VARIANTS)" ;;
  esac
}

if [ "${1:-}" = --plant ]; then
  [ $# = 3 ] || die "usage: build.sh --plant VARIANT STAGING_DIR"
  plant "$2" "$3"
  exit 0
fi
case "${1:-}" in
  -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
esac
[ $# -ge 2 ] || die "usage: build.sh VARIANT OUT [tiny build options]"
variant=$1 out=$2
shift 2
case " $VARIANTS " in *" $variant "*) ;; *) die "unknown variant '$variant' (one of: $VARIANTS)" ;; esac
extra=""
[ "$variant" = no-firstboot ] && extra=--no-firstboot
# shellcheck disable=SC2086 # extra is empty or one word
exec "$here/../tiny/build.sh" --mode server $extra \
  --customize "'$here/build.sh' --plant $variant" "$@" "$out"
