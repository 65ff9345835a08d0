#!/usr/bin/env bash
# Runs the JavaScript side of wyrmhole's tests: the js-client tests (against
# the real todo example server) and the two-browser test of the example.
#
# Installs what is missing first, so it works on a fresh machine (as root):
# node modules from the committed lock files, and Debian's Chromium (the
# browser test drives /usr/bin/chromium through playwright-core; Playwright's
# own browser download is not used). Exits non-zero if anything fails.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

need() {
  command -v "$1" >/dev/null || { echo "run-tests.sh: $1 is required but not installed" >&2; exit 1; }
}
# The machine image ships Node 20; a bare Debian gets its own packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing Debian's nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y nodejs npm
fi
need node
need npm
need cargo

# Node modules: (re)install when missing or older than the lock file.
for dir in "$here" "$root/tests/browser"; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "== npm ci in ${dir#"$root"/}"
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
done

if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM:-}" ]; then
  echo "== installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y chromium
fi

echo "== cargo build --example todo"
(cd "$root" && cargo build --example todo)
export WYRM_TODO_BIN="${WYRM_TODO_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/examples/todo}"

failed=0
echo "== js-client tests"
(cd "$here" && node --test test/) || failed=1
echo "== browser test (screenshots in test-artifacts/)"
(cd "$root/tests/browser" && node --test test/) || failed=1

if [ "$failed" -ne 0 ]; then
  echo "run-tests.sh: some JavaScript tests failed" >&2
fi
exit "$failed"
