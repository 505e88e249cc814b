#!/bin/sh
# Build a variant of the tiny server rootfs with exactly one planted defect, rootless.
#
#   images/defects/build.sh VARIANT OUT [images/tiny/build.sh options...]
#
# VARIANT   the one defect (everything else is the clean tiny server): a table of
#           images/defects/variants.toml whose images include "tiny", with the check ids
#           imgtest must fail on it; --help lists them.
#
# Internally the defect is planted into the staging tree by `build.sh --plant VARIANT DIR`,
# which images/tiny/build.sh runs under its fakeroot before packing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "defects/build.sh: $*" >&2; exit 2; }

# variants IMAGE [describe]: the tables of variants.toml built for IMAGE, in the file's
# order; a name a line, or (describe) each with its description, wrapped as --help shows it.
variants() {
  awk -v image="$1" -v describe="${2:-}" '
    function value(line) { # the string after `key = `, its \" unescaped
      sub(/^[a-z]+ *= *"/, "", line); sub(/" *$/, "", line); gsub(/\\"/, "\"", line)
      return line
    }
    /^\[/ { name = substr($0, 2, index($0, "]") - 2); next }
    /^description *=/ { text[name] = value($0) }
    /^images *=/ && index($0, "\"" image "\"") { order[++n] = name }
    END {
      for (i = 1; i <= n; i++) {
        v = order[i]
        if (describe == "") { print v; continue }
        line = sprintf("  %-20s", v); fresh = 1
        words = split(text[v], w, " ")
        for (j = 1; j <= words; j++) {
          if (!fresh && length(line) + 1 + length(w[j]) > 90) {
            print line; line = sprintf("%22s", ""); fresh = 1
          }
          line = line (fresh ? "" : " ") w[j]; fresh = 0
        }
        print line
      }
    }' "$here/variants.toml"
}
VARIANTS=$(variants tiny | tr '\n' ' ')
VARIANTS=${VARIANTS% }

# A builder's public key, as a CI system would bake it.
BUILDER_KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl builder@ci'

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
    *) plant_hygiene "$variant" "$root" ;;
  esac
}

# The hygiene defects: each a file a real build leaves behind.
plant_hygiene() {
  variant=$1 root=$2
  case "$variant" in
    authorized-key)
      mkdir -p "$root/root/.ssh"
      echo "$BUILDER_KEY" > "$root/root/.ssh/authorized_keys"
      chmod 0700 "$root/root/.ssh"; chmod 0600 "$root/root/.ssh/authorized_keys"
      ;;
    shadow-backup)
      hash=$("$root/bin/busybox" mkpasswd -m sha512 -S imgtestsalt imgtest-fixed)
      awk -F: -v OFS=: -v h="$hash" '$1 == "root" { $2 = h } { print }' "$root/etc/shadow" \
        > "$root/etc/shadow-"
      chmod 0600 "$root/etc/shadow-"
      ;;
    rhosts) echo '+ +' > "$root/root/.rhosts" ;;
    random-seed)
      mkdir -p "$root/var/lib"
      head -c 512 /dev/urandom > "$root/var/lib/random-seed"
      ;;
    dbus-machine-id)
      mkdir -p "$root/var/lib/dbus"
      echo 0d2a4a7c6f9b4e1f8a3b5c7d9e1f2a3b > "$root/var/lib/dbus/machine-id"
      ;;
    private-key)
      command -v ssh-keygen >/dev/null || die "ssh-keygen not found (apt-get install openssh-client)"
      mkdir -p "$root/root/.ssh"
      ssh-keygen -q -t ed25519 -N '' -C builder@ci -f "$root/root/.ssh/id_ed25519"
      ;;
    persistent-net)
      mkdir -p "$root/etc/udev/rules.d"
      echo 'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"' \
        > "$root/etc/udev/rules.d/70-persistent-net.rules"
      ;;
    cloud-init-state)
      mkdir -p "$root/var/lib/cloud/instances/i-build/sem" "$root/var/lib/cloud/data"
      echo i-build > "$root/var/lib/cloud/data/instance-id"
      : > "$root/var/lib/cloud/instances/i-build/sem/config_ssh"
      echo i-build > "$root/var/lib/cloud/instances/i-build/datasource"
      ;;
    crash-dump)
      mkdir -p "$root/var/crash"
      printf 'ProblemType: Crash\nExecutablePath: /usr/bin/app\nSignal: 11\n' > "$root/var/crash/_usr_bin_app.0.crash"
      ;;
    mail-spool)
      mkdir -p "$root/var/mail"
      printf 'From root@builder\nSubject: Cron <root@builder> run-tests\n\nall tests passed\n' > "$root/var/mail/root"
      ;;
    dhcp-lease)
      mkdir -p "$root/var/lib/dhcp"
      printf 'lease {\n  interface "eth0";\n  fixed-address 10.20.0.15;\n  option routers 10.20.0.1;\n}\n' \
        > "$root/var/lib/dhcp/dhclient.eth0.leases"
      ;;
    tmp-files)
      mkdir -p "$root/var/tmp"
      printf 'build 4711: 132 tests passed\n' > "$root/var/tmp/build-output.txt"
      ;;
    unowned-script)
      printf '#!/bin/sh\n# run before publishing\nwget -qO- http://localhost/ | grep -q ok\n' > "$root/root/verify-image"
      chmod 0755 "$root/root/verify-image"
      ;;
    package-cache)
      mkdir -p "$root/var/cache/apt/archives"
      head -c 4096 /dev/zero > "$root/var/cache/apt/archives/curl_7.88.1-10_amd64.deb"
      ;;
    boot-time-key)
      # shellcheck disable=SC2016 # the script's own variables
      printf '#!/bin/sh\n# give the build system access to every server\n[ "$1" = start ] || exit 0\nmkdir -p /root/.ssh\necho "%s" >> /root/.ssh/authorized_keys\n' \
        "$BUILDER_KEY" > "$root/etc/init.d/S48builder-access"
      chmod 0755 "$root/etc/init.d/S48builder-access"
      ;;
    dropbear-blank)
      sed -i 's/dropbear -R -p 22/dropbear -R -B -p 22/' "$root/etc/init.d/S50dropbear"
      grep -q 'dropbear -R -B' "$root/etc/init.d/S50dropbear" || die "S50dropbear changed: cannot plant -B"
      ;;
    *) die "unknown variant '$variant' (one of: $VARIANTS)" ;;
  esac
}

if [ "${1:-}" = --plant ]; then
  [ $# = 3 ] || die "usage: build.sh --plant VARIANT STAGING_DIR"
  plant "$2" "$3"
  exit 0
fi
case "${1:-}" in
  -h|--help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    printf '\nVariants:\n'
    variants tiny describe
    exit 0
    ;;
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
