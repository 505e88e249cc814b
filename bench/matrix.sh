#!/bin/sh
# Wall time of `imgtest matrix` over 4 real Debian cloud kernels (6.1.0-53 .. -56) with
# --jobs 2 against the same 4 images built by `fsmaker` and tested by `imgtest run` one
# after the other in a shell loop. Same machine, same run, TCG, one boot per kernel, the
# tiny server rootfs; the kernels are imported into a private cache first (not timed).
#
#   bench/matrix.sh
#
# Prints both wall times and the ratio (target <= 0.6). The machine may be shared: run it
# when it is otherwise idle, and read the ratio rather than the absolute times.
#
# Then, as root (debootstrap), the clean Debian image (images/debian/build.sh): imgtest
# run's time-to-verdict (2 boots, the default) against the same image's floor, plain QEMU
# booting it once until its SSH server sends its banner, with the same entropy device
# imgtest gives every guest; 5 runs each, interleaved, minimum (target <= 1.3).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imgtest-bench.XXXXXX")
qpid=""
trap '[ -n "$qpid" ] && kill "$qpid" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

cd "$repo"
cargo build --release --quiet --bin imgtest --bin fsmaker
imgtest="$repo/target/release/imgtest"
fsmaker="$repo/target/release/fsmaker"
export FSMAKER_CACHE="$work/cache"

echo "importing 4 kernels and building the tiny server rootfs..." >&2
versions=""
for abi in 53 54 55 56; do
  "$fsmaker" kernel fetch --package "linux-image-6.1.0-$abi-cloud-amd64" >/dev/null
  versions="$versions 6.1.0-$abi-cloud-amd64"
done
images/tiny/build.sh --mode server "$work/rootfs.ext4" >/dev/null
floor_accel "$imgtest"

run_opts="-m 256 --boots 1 --skip shutdown.clean"

echo "sequential: fsmaker + imgtest run per kernel..." >&2
start=$(now)
for v in $versions; do
  "$fsmaker" --kernel-version "$v" "$work/rootfs.ext4" "$work/$v.img" >/dev/null
  # shellcheck disable=SC2086
  "$imgtest" run $run_opts "$work/$v.img" >"$work/seq-$v.txt" 2>/dev/null || {
    echo "imgtest run failed on $v:" >&2; cat "$work/seq-$v.txt" >&2; exit 2; }
  rm -f "$work/$v.img"
done
seq=$(calc "$(now) - $start")

echo "imgtest matrix --jobs 2..." >&2
set --
for v in $versions; do set -- "$@" --kernel "$v"; done
start=$(now)
# shellcheck disable=SC2086
"$imgtest" matrix "$work/rootfs.ext4" "$@" --jobs 2 $run_opts >"$work/matrix.txt" 2>/dev/null || {
  echo "imgtest matrix failed:" >&2; cat "$work/matrix.txt" >&2; exit 2; }
mat=$(calc "$(now) - $start")

cat "$work/matrix.txt"
printf 'sequential fsmaker + imgtest run x4: %.1fs\n' "$seq"
printf 'imgtest matrix --jobs 2:            %.1fs\n' "$mat"
printf 'ratio matrix/sequential:            %.2f (target <= 0.6)\n' "$(calc "$mat / $seq")"

if [ "$(id -u)" != 0 ]; then
  echo "Debian time-to-verdict: skipped (images/debian/build.sh needs root for debootstrap)"
  exit 0
fi
echo "building the clean Debian image..." >&2
unset FSMAKER_CACHE  # the default kernel, as the Debian tests use
default_kernel "$fsmaker"
images/debian/build.sh "$work/debian.ext4" >/dev/null
"$fsmaker" "$work/debian.ext4" "$work/debian.img" >/dev/null
floor_min="" verdict_min=""
for i in 1 2 3 4 5; do
  f=$(floor_once "$work/debian.img" 384 -device virtio-rng-pci)
  start=$(now)
  "$imgtest" run "$work/debian.img" >"$work/debian.txt" 2>&1 || {
    echo "imgtest run failed on the Debian image:" >&2; cat "$work/debian.txt" >&2; exit 2; }
  v=$(calc "$(now) - $start")
  echo "Debian run $i: floor ${f}s, imgtest run (2 boots) ${v}s" >&2
  if below "$f" "$floor_min"; then floor_min=$f; fi
  if below "$v" "$verdict_min"; then verdict_min=$v; fi
done
printf 'Debian floor (plain QEMU, 1 boot, to SSH banner): %.1fs\n' "$floor_min"
printf 'Debian imgtest run (2 boots, to verdict):         %.1fs\n' "$verdict_min"
printf 'ratio Debian verdict/floor:                       %.2f (target <= 1.3)\n' "$(calc "$verdict_min / $floor_min")"
