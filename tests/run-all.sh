#!/usr/bin/env bash
# Runs every test of wyrmhole: formatting and lints, the Rust unit,
# integration, doc and compile-fail tests on SQLite, the database tests again
# on a throwaway PostgreSQL server, then the JS client's tests and the
# browser test against real servers. Installs what is missing (redis-server,
# PostgreSQL and libpq-dev, node packages, Chromium) on a fresh Debian
# machine. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n== %s (at %ss)\n' "$*" "$(($(date +%s) - started))"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

# tests/multiprocess.rs starts its own redis-server (on a free port, in a
# temp dir); it needs the binary.
if ! command -v redis-server >/dev/null; then
  step "installing redis-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y redis-server
fi
command -v redis-server >/dev/null || { echo "redis-server could not be installed" >&2; exit 1; }
# Debian's package starts a system service on 6379; the tests never use it.

step "cargo test --workspace (SQLite)"
# DATABASE_URL would send the database tests to PostgreSQL; this run is SQLite's.
env -u DATABASE_URL cargo test --workspace

# PostgreSQL: the same database tests (every test file that uses
# tests/common or its database module) and the lib's unit tests, with the
# `postgres` feature, against a server of our own that is gone at exit.
source tests/support/postgres.sh
step "PostgreSQL: install the server and libpq-dev if missing"
pg_install

step "cargo clippy --all-targets --features postgres -- -D warnings"
cargo clippy --all-targets --features postgres -- -D warnings

step "cargo build --features postgres --example todo --example relations_server (for the multi-process tests)"
cargo build --features postgres --example todo --example relations_server

step "PostgreSQL: start a throwaway server"
pg_start
pg_tests=()
for file in tests/*.rs; do
  if grep -qE '^mod (common|database);' "$file"; then
    pg_tests+=(--test "$(basename "$file" .rs)")
  fi
done
[ "${#pg_tests[@]}" -gt 0 ] || { echo "run-all.sh: found no database tests to run on PostgreSQL" >&2; exit 1; }

step "cargo test --features postgres --lib ${pg_tests[*]} (PostgreSQL)"
cargo test --features postgres --lib "${pg_tests[@]}"
pg_stop
trap - EXIT
unset DATABASE_URL

if [ -f js-client/run-tests.sh ]; then
  step "JS client and browser tests"
  bash js-client/run-tests.sh
fi

step "instruction counts of the hot paths (callgrind, tests/instructions.sh)"
bash tests/instructions.sh

step "all tests passed in $(($(date +%s) - started))s"
