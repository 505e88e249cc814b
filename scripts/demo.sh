#!/usr/bin/env bash
# The main job on a built-in default, end to end on a fresh Debian 12 machine:
#   1. fetch the pinned known-good Debian cloud kernel into fsmaker's cache,
#   2. build the tiny server rootfs (busybox, dropbear, firstboot) rootless from pinned packages,
#   3. make it a bootable disk with fsmaker (MBR, GRUB, kernel, initrd),
#   4. imgtest run it: two parallel boots, metadata service, SSH login, checks, report.
# Everything lands in target/demo/ (report.json, report.xml, artifacts/). Exit code is imgtest's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -q --bins
bin=target/release
out=target/demo
mkdir -p "$out"
export FSMAKER_CACHE="${FSMAKER_CACHE:-$PWD/target/demo/fsmaker-cache}"

echo "== 1. kernel: the pinned Debian cloud kernel (images/assets.toml)"
if "$bin/fsmaker" kernel list | grep -q "^no kernel cached"; then
  deb=$(images/fetch-assets.sh --role kernel | head -n 1)
  "$bin/fsmaker" kernel fetch "$deb"
fi
"$bin/fsmaker" kernel list

echo "== 2. rootfs: images/tiny/build.sh --mode server"
images/tiny/build.sh --mode server "$out/tiny.ext4"

echo "== 3. disk: fsmaker"
"$bin/fsmaker" --force "$out/tiny.ext4" "$out/tiny.img"
"$bin/sparsecopy" --info "$out/tiny.img"

echo "== 4. imgtest run"
rm -rf "$out/artifacts"
exec "$bin/imgtest" run --json "$out/report.json" --junit "$out/report.xml" \
  --artifacts "$out/artifacts" "$out/tiny.img"
