#!/bin/sh
# The offline phase of `imgtest run` (recognising the image and reading every hygiene fact
# from its root filesystem, before any boot) on a 2 GiB Debian 12 image with ~24 000
# inodes: images/debian/build.sh's cloud-init flavour plus git, vim, man-db, locales,
# python3-pip, perl and friends. Target: <= 1.0 s.
#
#   sudo bench/offline.sh            (root: debootstrap builds the image; cached afterwards)
#
# Against a floor measured in the same run, interleaved: `e2fsck -fn` on the same
# filesystem, which reads every inode and directory once and judges nothing. Five runs
# each, minimum; the default command line (`imgtest run IMAGE` with only the image-scope
# checks selected, so nothing boots; the offline phase is the report's `offline_secs`).
# The machine may be shared: the load is printed with the figures.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imgtest-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
# shellcheck source=bench/lib.sh disable=SC1091
. "$repo/bench/lib.sh"

cd "$repo"
cargo build --release --quiet --bin imgtest --bin fsmaker
imgtest="$repo/target/release/imgtest"
fsmaker="$repo/target/release/fsmaker"
default_kernel "$fsmaker"

extra="git vim man-db locales python3-pip perl curl ca-certificates less rsync gnupg iproute2"
extra="$extra bind9-dnsutils python3-venv tmux bash-completion"
echo "building the Debian image (cached after the first run)..." >&2
images/debian/build.sh --variant cloud-init --size 2G --extra "$extra" "$work/rootfs.ext4" >/dev/null
"$fsmaker" "$work/rootfs.ext4" "$work/debian.img" >/dev/null
inodes=$(debugfs -R stats "$work/rootfs.ext4" 2>/dev/null |
  awk '/^Inode count:/ { n = $3 } /^Free inodes:/ { f = $3 } END { print n - f }')
checks=$("$imgtest" checks --json | python3 -c '
import json, sys
print(" ".join("--check " + c["id"] for c in json.load(sys.stdin) if c["scope"] == "image"))')

best_offline="" best_total="" best_floor=""
min() { if [ -z "$1" ]; then echo "$2"; else calc "($2 < $1) ? $2 : $1"; fi; }
for _ in 1 2 3 4 5; do
  start=$(now)
  # shellcheck disable=SC2086 # the check flags are words
  "$imgtest" run $checks --json "$work/r.json" "$work/debian.img" >/dev/null 2>&1 || true
  end=$(now)
  offline=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["offline_secs"])' "$work/r.json")
  best_offline=$(min "$best_offline" "$offline")
  best_total=$(min "$best_total" "$(calc "$end - $start")")
  start=$(now)
  e2fsck -fn "$work/rootfs.ext4" >/dev/null 2>&1 || true
  end=$(now)
  best_floor=$(min "$best_floor" "$(calc "$end - $start")")
done

echo "image: 2 GiB Debian 12 (cloud-init + $(echo "$extra" | wc -w) packages), $inodes inodes in use"
echo "load: $(cut -d ' ' -f 1-3 /proc/loadavg) on $(nproc) CPUs"
printf 'imgtest offline phase: %.3f s (target <= 1.0 s); whole command: %.3f s\n' "$best_offline" "$best_total"
printf 'floor, e2fsck -fn:     %.3f s\n' "$best_floor"
printf 'ratio offline / floor: %.2f\n' "$(calc "$best_offline / $best_floor")"
