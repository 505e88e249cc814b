#!/usr/bin/env bash
# Benchmark sparsecopy against its peers on four cases, in one run:
#   (a) 4 GiB sparse file, ~12% scattered random data plus runs of explicit zeros
#   (b) 2 GiB ext4 image made by mkfs.ext4 -d from a real tree (~700 MiB of files)
#   (c) gzip of (a): on stdin, and as a .gz file argument
#   (d) raw (a) piped through `cat |` into stdin
# Peers: cp --sparse=always, dd conv=sparse bs=1M, qemu-img convert -O raw -S 4k,
# bmaptool create+copy; for (c) zcat|cp, zcat|dd and bmaptool copy of the .gz;
# for (d) cat|cp and cat|dd. Each time is the minimum of 3 warm-cache runs, once
# without and once with a final `sync` of the output file. Prints time, MiB/s
# (of SRC's apparent size), allocated bytes of the output, whether it equals
# SRC, and the ratio sparsecopy / fastest peer.
#
# Usage: bench/sparsecopy.sh            (files go to $BENCH_DIR, default under /tmp,
#        BENCH_TREE=/usr/share           and are deleted at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
for t in cp dd qemu-img bmaptool pigz zcat mkfs.ext4 python3 cmp awk; do
    command -v "$t" >/dev/null || { echo "bench: missing $t (run scripts/deps.sh)" >&2; exit 2; }
done
cargo build --release -q --bin sparsecopy
SC=$PWD/target/release/sparsecopy
W=$(mktemp -d "${BENCH_DIR:-/tmp}/sparsecopy-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
TREE=${BENCH_TREE:-/usr/share}
RUNS=${BENCH_RUNS:-3}

echo "preparing inputs in $W ..." >&2
python3 - "$W/a.img" <<'PY'
import os, random, sys
GiB, MiB, K4 = 1 << 30, 1 << 20, 4096
random.seed(42)
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
size = 4 * GiB
os.ftruncate(fd, size)
for _ in range(16):            # runs of explicit (allocated) zeros, ~160 MiB
    n = random.randrange(4, 17) * MiB
    os.pwrite(fd, bytes(n), random.randrange(0, size - n) // K4 * K4)
data = 0
while data < size * 12 // 100:  # scattered random data, ~12%
    n = random.randrange(16, 257) * K4
    os.pwrite(fd, os.urandom(n), random.randrange(0, size - n) // K4 * K4)
    data += n
os.close(fd)
PY
truncate -s 2G "$W/b.img"
mkfs.ext4 -q -d "$TREE" "$W/b.img"
pigz -c "$W/a.img" >"$W/a.img.gz"
bmaptool -q create -o "$W/a.bmap" "$W/a.img"

now() { date +%s%N; }
alloc() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# measure NAME SRC_FOR_CMP SYNC CMD...: min time over $RUNS runs of CMD
# (which writes $W/out), with `sync $W/out` inside the timing if SYNC=1.
declare -A T
measure() {
    local name=$1 src=$2 sync=$3; shift 3
    local best='' t0 t1 dt
    for _ in $(seq "$RUNS"); do
        rm -f "$W/out" "$W/out.bmap"
        t0=$(now)
        "$@" >/dev/null 2>&1 || { echo "bench: $name failed" >&2; exit 2; }
        [ "$sync" = 1 ] && sync "$W/out"
        t1=$(now)
        dt=$(( (t1 - t0) / 1000 ))
        if [ -z "$best" ] || [ "$dt" -lt "$best" ]; then best=$dt; fi
    done
    local ok=OK
    cmp -s "$src" "$W/out" || ok=DIFF
    T[$name]=$best
    awk -v n="$name" -v us="$best" -v size="$(stat -c %s "$src")" -v a="$(alloc "$W/out")" -v ok="$ok" \
        'BEGIN { printf "  %-34s %8.3f s %9.0f MiB/s %14.0f B  %s\n", n, us / 1e6, size / 1048576 / (us / 1e6), a, ok }'
}

ratio() { # ratio NAME PEER...
    local me=${T[$1]} best='' who=''; shift
    for p in "$@"; do
        if [ -z "$best" ] || [ "${T[$p]}" -lt "$best" ]; then best=${T[$p]}; who=$p; fi
    done
    awk -v me="$me" -v best="$best" -v who="$who" \
        'BEGIN { printf "  => ratio %.2f vs fastest peer (%s)\n", me / best, who }'
}

file_case() { # file_case LABEL SRC SYNC
    local src=$2 s=$3
    echo "($1) $(basename "$src"), $( [ "$s" = 1 ] && echo with || echo without) sync"
    measure sparsecopy "$src" "$s" "$SC" -q "$src" "$W/out"
    measure "cp --sparse=always" "$src" "$s" cp --sparse=always "$src" "$W/out"
    measure "dd conv=sparse bs=1M" "$src" "$s" dd if="$src" of="$W/out" conv=sparse bs=1M status=none
    measure "qemu-img convert -S 4k" "$src" "$s" qemu-img convert -O raw -S 4k "$src" "$W/out"
    measure "bmaptool create+copy" "$src" "$s" sh -c \
        "bmaptool -q create -o '$W/out.bmap' '$src' && bmaptool -q copy --bmap '$W/out.bmap' '$src' '$W/out'"
    ratio sparsecopy "cp --sparse=always" "dd conv=sparse bs=1M" "qemu-img convert -S 4k" "bmaptool create+copy"
}

echo "sparsecopy benchmark, $(nproc) cores (shared), $(date -u +%FT%TZ)"
for s in 0 1; do
    file_case a "$W/a.img" $s
    file_case b "$W/b.img" $s
    echo "(c) a.img.gz ($(alloc "$W/a.img.gz") B), $( [ "$s" = 1 ] && echo with || echo without) sync"
    A=$W/a.img GZ=$W/a.img.gz O=$W/out
    measure "sparsecopy - <a.img.gz" "$A" $s sh -c "'$SC' -q - '$O' <'$GZ'"
    measure "sparsecopy a.img.gz" "$A" $s "$SC" -q "$GZ" "$O"
    measure "zcat | cp --sparse=always" "$A" $s sh -c "zcat '$GZ' | cp --sparse=always /dev/stdin '$O'"
    measure "zcat | dd conv=sparse" "$A" $s sh -c "zcat '$GZ' | dd of='$O' conv=sparse bs=1M iflag=fullblock status=none"
    measure "bmaptool copy a.img.gz" "$A" $s bmaptool -q copy --bmap "$W/a.bmap" "$GZ" "$O"
    ratio "sparsecopy - <a.img.gz" "zcat | cp --sparse=always" "zcat | dd conv=sparse" "bmaptool copy a.img.gz"
    ratio "sparsecopy a.img.gz" "zcat | cp --sparse=always" "zcat | dd conv=sparse" "bmaptool copy a.img.gz"
    echo "(d) cat a.img |, $( [ "$s" = 1 ] && echo with || echo without) sync"
    measure "cat | sparsecopy -" "$A" $s sh -c "cat '$A' | '$SC' -q - '$O'"
    measure "cat | cp --sparse=always" "$A" $s sh -c "cat '$A' | cp --sparse=always /dev/stdin '$O'"
    measure "cat | dd conv=sparse" "$A" $s sh -c "cat '$A' | dd of='$O' conv=sparse bs=1M iflag=fullblock status=none"
    ratio "cat | sparsecopy -" "cat | cp --sparse=always" "cat | dd conv=sparse"
done
