#!/usr/bin/env bash
# Runs every test of wyrmhole: formatting and lints, the Rust unit,
# integration, doc and compile-fail tests, then the JS client's tests and the
# browser test against real servers. Installs what is missing (node packages,
# Chromium) on a fresh Debian machine. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n== %s (at %ss)\n' "$*" "$(($(date +%s) - started))"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

if [ -f js-client/run-tests.sh ]; then
  step "JS client and browser tests"
  bash js-client/run-tests.sh
fi

step "all tests passed in $(($(date +%s) - started))s"
