#!/bin/sh
# Time-to-verdict of `imgtest run` (2 parallel boots) on the tiny server image against the
# floor: the same image booted once by plain qemu-system-x86_64 until its SSH server sends
# its banner. Same machine, same run, TCG, 3 runs each, minimum reported.
#
#   bench/boot.sh [RUNS]
#
# Prints both times, the ratio (target <= 1.3), imgtest's own CPU share (target < 2%,
# QEMU excluded) and the phase timeline of the fastest imgtest run.
set -eu

runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imgtest-bench.XXXXXX")
qpid=""
cleanup() { [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

cd "$repo"
cargo build --release --quiet --bin imgtest --bin fsmaker
imgtest="$repo/target/release/imgtest"
fsmaker="$repo/target/release/fsmaker"

echo "building the tiny server image..." >&2
if "$fsmaker" kernel list | grep -q "^no kernel cached"; then
  "$fsmaker" kernel fetch "$(images/fetch-assets.sh --role kernel | head -n 1)" >&2
fi
images/tiny/build.sh --mode server "$work/rootfs.ext4" >/dev/null
"$fsmaker" "$work/rootfs.ext4" "$work/tiny.img" >/dev/null

now() { date +%s.%N; }
calc() { awk "BEGIN { print ($1) }"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Floor: plain QEMU with its defaults (1 vCPU) and imgtest's RAM, its network restricted
# like imgtest's, and a metadata answer for every path so firstboot does not wait.
# FLOOR_EXTRA adds QEMU options: the second floor adds imgtest's entropy device, so the
# two floors separate what imgtest's VM set-up gains from imgtest's own overhead.
floor_once() {
  port=$(free_port)
  qemu-img create -q -f qcow2 -F raw -b "$work/tiny.img" "$work/floor.qcow2"
  start=$(now)
  qemu-system-x86_64 -nodefaults -no-user-config -nographic -serial null -monitor none \
    -machine pc -accel tcg -m 384 \
    -drive file="$work/floor.qcow2",format=qcow2,if=none,id=d0,cache=unsafe \
    -device virtio-blk-pci,drive=d0 \
    -netdev "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,hostfwd=tcp:127.0.0.1:$port-:22,guestfwd=tcp:169.254.169.254:80-cmd:printf 'HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nbenchpassword'" \
    -device virtio-net-pci,netdev=n0 ${FLOOR_EXTRA:-} &
  qpid=$!
  python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); deadline = time.time() + 600
while time.time() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2); s.settimeout(2)
        if s.recv(64).startswith(b"SSH-"):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
PY
  end=$(now)
  kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
  rm -f "$work/floor.qcow2"
  calc "$end - $start"
}

imgtest_once() {
  start=$(now)
  "$imgtest" run --accel tcg --json "$work/r.json" --artifacts "$work/art" "$work/tiny.img" \
    >"$work/out.txt" 2>"$work/err.txt" || { cat "$work/out.txt" "$work/err.txt" >&2; echo "imgtest failed" >&2; exit 1; }
  end=$(now)
  cpu=$(sed -n "s/.*imgtest's own CPU \([0-9.]*\)s.*/\1/p" "$work/err.txt")
  echo "$(calc "$end - $start") $cpu"
}

floor_min="" rng_min="" imgtest_min="" cpu_at_min=""
i=0
while [ "$i" -lt "$runs" ]; do
  f=$(floor_once)
  g=$(FLOOR_EXTRA="-device virtio-rng-pci" floor_once)
  set -- $(imgtest_once)
  echo "run $((i + 1)): floor ${f}s, floor+rng ${g}s, imgtest ${1}s (own CPU ${2}s)" >&2
  if [ -z "$floor_min" ] || [ "$(calc "$f < $floor_min")" = 1 ]; then floor_min=$f; fi
  if [ -z "$rng_min" ] || [ "$(calc "$g < $rng_min")" = 1 ]; then rng_min=$g; fi
  if [ -z "$imgtest_min" ] || [ "$(calc "$1 < $imgtest_min")" = 1 ]; then
    imgtest_min=$1 cpu_at_min=$2; cp "$work/r.json" "$work/best.json"
  fi
  i=$((i + 1))
done

printf 'floor (plain QEMU, 1 boot, to SSH banner): %.1fs\n' "$floor_min"
printf 'imgtest run (2 boots, to verdict):         %.1fs\n' "$imgtest_min"
printf 'ratio imgtest/floor: %.2f (target <= 1.30)\n' "$(calc "$imgtest_min / $floor_min")"
printf 'floor with virtio-rng like imgtest:        %.1fs (ratio %.2f)\n' "$rng_min" "$(calc "$imgtest_min / $rng_min")"
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
