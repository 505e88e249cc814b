#!/bin/sh
# Fetch the pinned Debian packages of images/assets.toml into the asset cache and verify them.
#
#   images/fetch-assets.sh [--role guest|kernel|boot|installer] [NAME...]
#
# Prints the path of each verified .deb on stdout, one a line, in manifest order.
# Cache: ${IMGTEST_ASSETS:-<repo>/target/test-assets}/debs in a checkout; installed (under
# /usr/share/imgtest), ${IMGTEST_ASSETS:-${XDG_CACHE_HOME:-~/.cache}/imgtest}/debs. A cached file is only used when
# its sha256 matches the manifest; a download that does not match is deleted and the script
# fails (exit 2) naming the package, the expected and the actual checksum.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
manifest="$here/assets.toml"
if [ -f "$here/../Cargo.toml" ]; then
  cache="${IMGTEST_ASSETS:-$here/../target/test-assets}/debs"
else
  cache="${IMGTEST_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/imgtest}/debs"
fi

die() { echo "fetch-assets: $*" >&2; exit 2; }

role=""
while [ $# -gt 0 ]; do
  case "$1" in
    --role) [ $# -ge 2 ] || die "--role needs a value (guest, kernel, boot or installer)"; role=$2; shift 2 ;;
    --role=*) role=${1#--role=}; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option: $1" ;;
    *) break ;;
  esac
done

[ -r "$manifest" ] || die "cannot read $manifest"
command -v apt-get >/dev/null || die "apt-get not found (a Debian machine is needed to fetch packages)"
command -v sha256sum >/dev/null || die "sha256sum not found (install coreutils)"

# One line per package: name version arch sha256 role (the manifest's fixed layout).
entries=$(awk '
  function flush() { if (name != "") print name, version, arch, sha, role; name = version = arch = sha = role = "" }
  /^\[\[package\]\]/ { flush(); next }
  /^[a-z0-9]+ *= *"/ {
    key = $1; val = $0; sub(/^[^"]*"/, "", val); sub(/".*$/, "", val)
    if (key == "name") name = val; else if (key == "version") version = val
    else if (key == "arch") arch = val; else if (key == "sha256") sha = val; else if (key == "role") role = val
  }
  END { flush() }' "$manifest")
[ -n "$entries" ] || die "no [[package]] entries in $manifest"

for want in "$@"; do
  printf '%s\n' "$entries" | awk -v n="$want" '$1 == n { f = 1 } END { exit !f }' \
    || die "$want is not pinned in $manifest"
done

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

printf '%s\n' "$entries" | while read -r name version arch sha role_; do
  if [ $# -gt 0 ]; then
    keep=0
    for want in "$@"; do [ "$want" = "$name" ] && keep=1; done
    [ $keep = 1 ] || continue
  elif [ -n "$role" ] && [ "$role" != "$role_" ]; then
    continue
  fi
  file="$cache/${name}_$(printf '%s' "$version" | sed 's/:/%3a/g')_${arch}.deb"
  if [ -f "$file" ] && [ "$(sha256sum "$file" | cut -d' ' -f1)" = "$sha" ]; then
    echo "$file"
    continue
  fi
  rm -f "$file"
  echo "fetch-assets: downloading $name=$version" >&2
  (cd "$tmp" && apt-get -q download "$name:$arch=$version" >/dev/null 2>"$tmp/apt.err") || {
    cat "$tmp/apt.err" >&2
    die "apt-get download $name:$arch=$version failed (run apt-get update; if the version left the archive, pin a newer one in $manifest)"
  }
  got=""
  for f in "$tmp"/"${name}"_*.deb; do [ -f "$f" ] && got=$f; done
  [ -n "$got" ] || die "apt-get download $name=$version produced no .deb"
  actual=$(sha256sum "$got" | cut -d' ' -f1)
  if [ "$actual" != "$sha" ]; then
    rm -f "$got"
    die "sha256 mismatch for $name=$version: expected $sha, got $actual (refusing to use it)"
  fi
  mv "$got" "$file"
  echo "$file"
done
