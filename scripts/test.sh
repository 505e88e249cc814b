#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: install what is missing, lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
cargo fmt --check
cargo clippy --all-targets -q -- -D warnings
cargo nextest run --no-fail-fast "$@"
