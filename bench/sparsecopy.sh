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
# (of SRC's apparent size), allocated bytes of the output (after a sync,
# outside the timing), whether it equals
# SRC, and the ratio sparsecopy / fastest peer.
#
# Usage: bench/sparsecopy.sh            (files go to $BENCH_DIR, default under /tmp,
#        BENCH_TREE=/usr/share           and are deleted at the end; BENCH_A_MIB=4096 and
#        BENCH_RUNS=3 shrink a smoke run)
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
python3 - "$W/a.img" "${BENCH_A_MIB:-4096}" <<'PY'
import os, random, sys
MiB, K4 = 1 << 20, 4096
random.seed(42)
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
size = int(sys.argv[2]) * MiB
os.ftruncate(fd, size)
for _ in range(16):            # runs of explicit (allocated) zeros, ~160 MiB
    n = random.randrange(4, 17) * MiB * size // (4096 * MiB) // K4 * K4
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

sync  # inputs clean in the page cache: no writeback of them during the runs

now() { date +%s%N; }
alloc() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# bench TITLE SRC SYNC NAME CMD [NAME CMD]...: each CMD (a shell command writing
# $O) runs $RUNS times, round-robin with the others so background activity
# hits all alike; the output is checked against SRC and deleted after every
# run. With SYNC=1 the timing includes `sync $O`. Names containing
# "sparsecopy" are ours, the others are peers.
bench() {
    local title=$1 src=$2 sync=$3; shift 3
    local -a names=() cmds=()
    while [ $# -gt 0 ]; do names+=("$1"); cmds+=("$2"); shift 2; done
    local -a best=() okay=() space=()
    local r i t0 t1 dt
    for r in $(seq "$RUNS"); do
        for i in "${!names[@]}"; do
            rm -f "$O" "$O.bmap"
            t0=$(now)
            sh -c "${cmds[$i]}" >/dev/null 2>&1 || { echo "bench: ${names[$i]} failed" >&2; exit 2; }
            if [ "$sync" = 1 ]; then sync "$O"; fi
            t1=$(now)
            dt=$(( (t1 - t0) / 1000 ))
            if [ -z "${best[$i]:-}" ] || [ "$dt" -lt "${best[$i]}" ]; then best[$i]=$dt; fi
            if [ "$r" = "$RUNS" ]; then
                # Allocation once written back: before that, ext4 counts delayed
                # allocations without their extent-tree blocks.
                sync "$O"
                space[$i]=$(alloc "$O")
                if cmp -s "$src" "$O"; then okay[$i]=OK; else okay[$i]=DIFF; fi
            fi
            rm -f "$O" "$O.bmap"
        done
    done
    echo "$title, $( [ "$sync" = 1 ] && echo with || echo without) sync"
    local size fastest='' who=''
    size=$(stat -c %s "$src")
    for i in "${!names[@]}"; do
        awk -v n="${names[$i]}" -v us="${best[$i]}" -v size="$size" -v a="${space[$i]}" -v ok="${okay[$i]}" \
            'BEGIN { printf "  %-30s %8.3f s %9.0f MiB/s %14.0f B  %s\n", n, us / 1e6, size / 1048576 / (us / 1e6), a, ok }'
        case ${names[$i]} in *sparsecopy*) continue ;; esac
        if [ -z "$fastest" ] || [ "${best[$i]}" -lt "$fastest" ]; then fastest=${best[$i]}; who=${names[$i]}; fi
    done
    for i in "${!names[@]}"; do
        case ${names[$i]} in *sparsecopy*) ;; *) continue ;; esac
        awk -v n="${names[$i]}" -v me="${best[$i]}" -v best="$fastest" -v who="$who" \
            'BEGIN { printf "  => %s: ratio %.2f vs fastest peer (%s)\n", n, me / best, who }'
    done
}

A=$W/a.img B=$W/b.img GZ=$W/a.img.gz O=$W/out
echo "sparsecopy benchmark, $(nproc) cores shared with other work, min of $RUNS, $(date -u +%FT%TZ)"
for s in 0 1; do
    # With a sync, sparsecopy is told so (--sync: it starts writeback during the copy
    # and fsyncs); the `sync OUT` after every command, ours included, is the same.
    sync_opt=$( [ "$s" = 1 ] && echo --sync || true)
    for src in "$A" "$B"; do
        bench "($(basename "$src" .img)) $(basename "$src")" "$src" $s \
            "sparsecopy" "'$SC' -q $sync_opt '$src' '$O'" \
            "cp --sparse=always" "cp --sparse=always '$src' '$O'" \
            "dd conv=sparse bs=1M" "dd if='$src' of='$O' conv=sparse bs=1M status=none" \
            "qemu-img convert -S 4k" "qemu-img convert -O raw -S 4k '$src' '$O'" \
            "bmaptool create+copy" "bmaptool -q create -o '$O.bmap' '$src' && bmaptool -q copy --bmap '$O.bmap' '$src' '$O'"
    done
    bench "(c) a.img.gz, $(stat -c %s "$GZ") B" "$A" $s \
        "sparsecopy - <a.img.gz" "'$SC' -q $sync_opt - '$O' <'$GZ'" \
        "sparsecopy a.img.gz" "'$SC' -q $sync_opt '$GZ' '$O'" \
        "zcat | cp --sparse=always" "zcat '$GZ' | cp --sparse=always /dev/stdin '$O'" \
        "zcat | dd conv=sparse" "zcat '$GZ' | dd of='$O' conv=sparse bs=1M iflag=fullblock status=none" \
        "bmaptool copy a.img.gz" "bmaptool -q copy --bmap '$W/a.bmap' '$GZ' '$O'"
    bench "(d) cat a.img |" "$A" $s \
        "cat | sparsecopy -" "cat '$A' | '$SC' -q $sync_opt - '$O'" \
        "cat | cp --sparse=always" "cat '$A' | cp --sparse=always /dev/stdin '$O'" \
        "cat | dd conv=sparse" "cat '$A' | dd of='$O' conv=sparse bs=1M iflag=fullblock status=none"
done
