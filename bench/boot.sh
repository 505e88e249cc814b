#!/bin/sh
# Time-to-verdict of `imgtest run` (2 parallel boots), its default command line, on the tiny
# server image against the floor: the same image booted once by plain qemu-system-x86_64
# until its SSH server sends its banner. Same machine, same run, 3 runs each, minimum
# reported.
#
#   bench/boot.sh [RUNS]
#
# Prints both times, the ratio (target <= 1.05), imgtest's own CPU share (target < 2%,
# QEMU excluded) and the phase timeline of the fastest imgtest run. Beside them, for
# reading the gap: the floor with imgtest's entropy device, two such floors at once, and
# imgtest with one boot.
set -eu

runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imgtest-bench.XXXXXX")
qpid=""
cleanup() { [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

cd "$repo"
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
cargo build --release --quiet --bin imgtest --bin fsmaker
imgtest="$repo/target/release/imgtest"
fsmaker="$repo/target/release/fsmaker"

echo "building the tiny server image..." >&2
default_kernel "$fsmaker"
floor_accel "$imgtest"
images/tiny/build.sh --mode server "$work/rootfs.ext4" >/dev/null
"$fsmaker" "$work/rootfs.ext4" "$work/tiny.img" >/dev/null

# imgtest_once [OPTION]...: the default command line (plus OPTIONs) to its verdict; prints
# the seconds and imgtest's own CPU seconds.
imgtest_once() {
  start=$(now)
  "$imgtest" run "$@" --json "$work/r.json" --artifacts "$work/art" "$work/tiny.img" \
    >"$work/out.txt" 2>"$work/err.txt" || { cat "$work/out.txt" "$work/err.txt" >&2; echo "imgtest failed" >&2; exit 1; }
  end=$(now)
  cpu=$(sed -n "s/.*imgtest's own CPU \([0-9.]*\)s.*/\1/p" "$work/err.txt")
  echo "$(calc "$end - $start") $cpu"
}

# Two such floors (with imgtest's entropy device) at once, as imgtest's two boots run: the
# later one's time. On two cores the guests slow each other; this tells that from what
# imgtest adds.
pair_once() {
  for side in a b; do
    (
      # shellcheck disable=SC2030 # floor_once's scratch directory, one per side
      work="$work/$side" qpid=""
      trap '[ -n "$qpid" ] && kill "$qpid" 2>/dev/null' EXIT INT TERM
      mkdir -p "$work"
      floor_once "$1" 384 -device virtio-rng-pci >"$work/secs"
    ) &
  done
  wait
  # shellcheck disable=SC2031 # the subshells' $work was theirs alone
  a=$(cat "$work/a/secs") b=$(cat "$work/b/secs")
  rm -rf "$work/a" "$work/b"
  calc "$a > $b ? $a : $b"
}

floor_min="" rng_min="" pair_min="" one_min="" imgtest_min="" cpu_at_min=""
i=0
while [ "$i" -lt "$runs" ]; do
  f=$(floor_once "$work/tiny.img" 384)
  # The same with imgtest's entropy device: what imgtest's VM set-up gains, apart.
  g=$(floor_once "$work/tiny.img" 384 -device virtio-rng-pci)
  p=$(pair_once "$work/tiny.img")
  # One boot, no second guest on the cores: what imgtest itself adds to a boot.
  o=$(imgtest_once --boots 1 | cut -d' ' -f1)
  # shellcheck disable=SC2046 # two words: the seconds and imgtest's own CPU seconds
  set -- $(imgtest_once)
  echo "run $((i + 1)): floor ${f}s, floor+rng ${g}s, two floors at once ${p}s, imgtest --boots 1 ${o}s, imgtest ${1}s (own CPU ${2}s)" >&2
  if below "$f" "$floor_min"; then floor_min=$f; fi
  if below "$g" "$rng_min"; then rng_min=$g; fi
  if below "$p" "$pair_min"; then pair_min=$p; fi
  if below "$o" "$one_min"; then one_min=$o; fi
  if below "$1" "$imgtest_min"; then
    imgtest_min=$1 cpu_at_min=$2; cp "$work/r.json" "$work/best.json"
  fi
  i=$((i + 1))
done

printf 'floor (plain QEMU, 1 boot, to SSH banner): %.1fs\n' "$floor_min"
printf 'imgtest run (2 boots, to verdict):         %.1fs\n' "$imgtest_min"
printf 'ratio imgtest/floor: %.2f (target <= 1.05)\n' "$(calc "$imgtest_min / $floor_min")"
printf 'floor with virtio-rng like imgtest:        %.1fs (ratio %.2f)\n' "$rng_min" "$(calc "$imgtest_min / $rng_min")"
printf 'two such floors at once (the later):       %.1fs (ratio %.2f; the pair / one floor+rng: %.2f)\n' \
  "$pair_min" "$(calc "$imgtest_min / $pair_min")" "$(calc "$pair_min / $rng_min")"
printf 'imgtest run --boots 1 (1 boot, to verdict): %.1fs (ratio %.2f to floor+rng; no host-key uniqueness proof)\n' \
  "$one_min" "$(calc "$one_min / $rng_min")"
printf 'imgtest own CPU: %.2fs = %.2f%% of the run (target < 2%%)\n' "$cpu_at_min" "$(calc "100 * $cpu_at_min / $imgtest_min")"
echo "phase timeline of the fastest imgtest run (seconds since each QEMU started):"
python3 - "$work/best.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
for b in r["facts"]["boots"]:
    steps = [f"{p} {t:.1f}" for p, t in b["console"]["phases"]]
    if b.get("ssh_secs") is not None: steps.append(f"ssh {b['ssh_secs']:.1f}")
    if b["login"].get("after_secs") is not None: steps.append(f"password-works {b['login']['after_secs']:.1f}")
    if b["shutdown"].get("secs") is not None: steps.append(f"power-off +{b['shutdown']['secs']:.1f}")
    print(f"  boot {b['index']}: " + ", ".join(steps))
PY

# UEFI: the same rootfs as a UEFI-only GPT disk (fsmaker --firmware uefi), which the default
# command line boots under OVMF. The floor is plain QEMU with OVMF as imgtest runs it (q35,
# the code read-only, a fresh copy of the variable store, no option ROM on the NIC), one
# boot, to the SSH banner; imgtest is the default command line, 2 boots, to its verdict.
echo "building the UEFI-only image..." >&2
"$fsmaker" --firmware uefi "$work/rootfs.ext4" "$work/uefi.img" >/dev/null
ovmf=/usr/share/OVMF

uefi_floor_once() {
  cp "$ovmf/OVMF_VARS_4M.fd" "$work/floor-vars.fd"
  FLOOR_MACHINE=q35 FLOOR_NIC=virtio-net-pci,netdev=n0,romfile= floor_once "$work/uefi.img" 384 \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.fd" \
    -drive "if=pflash,format=raw,unit=1,file=$work/floor-vars.fd" -device virtio-rng-pci
}

uefi_imgtest_once() {
  start=$(now)
  "$imgtest" run --json "$work/u.json" --artifacts "$work/uart" "$work/uefi.img" \
    >"$work/uout.txt" 2>"$work/uerr.txt" || { cat "$work/uout.txt" "$work/uerr.txt" >&2; echo "imgtest (UEFI) failed" >&2; exit 1; }
  end=$(now)
  calc "$end - $start"
}

ufloor_min="" uimgtest_min=""
i=0
while [ "$i" -lt "$runs" ]; do
  f=$(uefi_floor_once)
  t=$(uefi_imgtest_once)
  echo "UEFI run $((i + 1)): floor ${f}s, imgtest ${t}s" >&2
  if below "$f" "$ufloor_min"; then ufloor_min=$f; fi
  if below "$t" "$uimgtest_min"; then
    uimgtest_min=$t; cp "$work/u.json" "$work/ubest.json"
  fi
  i=$((i + 1))
done

printf 'UEFI floor (plain QEMU + OVMF, 1 boot, to SSH banner): %.1fs\n' "$ufloor_min"
printf 'UEFI imgtest run (2 boots, to verdict):                %.1fs\n' "$uimgtest_min"
printf 'UEFI ratio imgtest/floor: %.2f (target <= 1.05)\n' "$(calc "$uimgtest_min / $ufloor_min")"
echo "phase timeline of the fastest UEFI imgtest run (seconds since each QEMU started; OVMF's own time is QEMU start to the bootloader):"
python3 - "$work/ubest.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
for b in r["facts"]["boots"]:
    phases = dict(b["console"]["phases"])
    steps = [f"{p} {t:.1f}" for p, t in b["console"]["phases"]]
    if b.get("ssh_secs") is not None: steps.append(f"ssh {b['ssh_secs']:.1f}")
    print(f"  boot {b['index']} ({b['firmware']}): " + ", ".join(steps))
    if "bootloader" in phases:
        print(f"    OVMF until the bootloader: {phases['bootloader']:.1f}s")
PY
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
