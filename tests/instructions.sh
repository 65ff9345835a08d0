#!/usr/bin/env bash
# Instruction counts of the hot paths (examples/hot_paths.rs) under
# callgrind, against the baseline in tests/instructions.baseline: fails if
# one grew by more than 5%. Counts, unlike seconds, do not depend on the
# machine's speed or its neighbours, so this check runs on every machine
# (issue 14 item 5). Each figure is the cost of one more unit of work: the
# difference between two runs of different sizes, so setup and warm-up
# cancel out.
#
#   bash tests/instructions.sh            # check
#   bash tests/instructions.sh --update   # write the current counts as the baseline
#
# A toolchain or dependency update moves the counts too: check the change
# is not the code's, then --update in the same commit.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=tests/instructions.baseline
tolerance=5

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
cargo build --release --quiet --example hot_paths
bin=target/release/examples/hot_paths
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Instructions executed inside the measured_* functions of one run.
collected() {
  valgrind --tool=callgrind --callgrind-out-file="$work/out" --toggle-collect='*measured_*' "$bin" "$@" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

# name, case, small run, large run, units of work per step of the run
cases=(
  "matching_per_change matching 200 400 1"
  "frames_per_delivery frames 10 20 1000"
  "write_per_update write 50 100 1"
)

declare -A now
for spec in "${cases[@]}"; do
  read -r name case small large units <<<"$spec"
  a=$(collected "$case" "$small")
  b=$(collected "$case" "$large")
  now[$name]=$(( (b - a) / ((large - small) * units) ))
done

if [[ "${1:-}" == "--update" ]]; then
  {
    echo "# Instructions per unit of work, from tests/instructions.sh --update"
    echo "# ($(rustc --version))"
    for spec in "${cases[@]}"; do
      read -r name _ <<<"$spec"
      echo "$name ${now[$name]}"
    done
  } >"$baseline"
  cat "$baseline"
  exit 0
fi

failed=0
while read -r name base; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  current=${now[$name]:?"no case $name"}
  printf '%-22s baseline %8d  now %8d  (%s)\n' "$name" "$base" "$current" \
    "$(awk -v a="$base" -v b="$current" 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }')"
  if (( current * 100 > base * (100 + tolerance) )); then
    echo "  -> more than ${tolerance}% over the baseline: a regression on a hot path" >&2
    failed=1
  elif (( current * 100 < base * (100 - tolerance) )); then
    echo "  -> more than ${tolerance}% under the baseline: if intended, run tests/instructions.sh --update"
  fi
done <"$baseline"
exit $failed
