#!/usr/bin/env bash
# campaign.sh: a long fuzzing campaign (not in CI): every fuzz target under
# AddressSanitizer and UndefinedBehaviorSanitizer from its committed corpus,
# for RUNS executions each (default 10 million) or SECONDS each, whichever
# ends first; afterwards the inputs that reach new code are merged into the
# committed corpus (tests/fuzz/corpus/NAME), so commit what it adds. Crashes
# are kept in FUZZ_BUILD_DIR/artifacts and end the campaign with status 1.
# --only takes one target or a comma-separated list (two lists in two
# processes use two cores; build first with `run.sh build`, then pass --no-build).
# usage: tests/fuzz/campaign.sh [--runs N] [--seconds S] [--only NAME[,NAME..]] [--no-build] [FUZZ_BUILD_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
runs=10000000 secs=86400 only="" dir="" build=1
while [ $# -gt 0 ]; do
  case $1 in
  --runs) runs=$2; shift 2 ;;
  --seconds) secs=$2; shift 2 ;;
  --only) only=$2; shift 2 ;;
  --no-build) build=0; shift ;;
  -*) echo "campaign: unknown option $1" >&2; exit 2 ;;
  *) dir=$1; shift ;;
  esac
done
dir=${dir:-$src/build/fuzz}
[ $build = 0 ] || bash "$src/tests/fuzz/run.sh" build "$dir" "$src"
bad=0
for f in "$src"/tests/fuzz/fuzz_*.c; do
  name=$(basename "$f" .c)
  [ -z "$only" ] || [[ ",$only," == *",$name,"* ]] || continue
  committed=$src/tests/fuzz/corpus/${name#fuzz_}
  [ -d "$committed" ] || committed=$src/tests/fuzz/corpus/$name
  work=$(mktemp -d)
  cp -r "$committed"/. "$work"/
  dict=()
  [ -f "$src/tests/fuzz/${name#fuzz_}.dict" ] && dict=(-dict="$src/tests/fuzz/${name#fuzz_}.dict")
  mkdir -p "$dir/artifacts"
  t0=$(date +%s)
  rc=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$dir/$name" -runs="$runs" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$name-" "${dict[@]}" "$work" > "$work.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
  before=$(find "$committed" -type f | wc -l)
  "$dir/$name" -merge=1 "$committed" "$work" > /dev/null 2>&1 || true
  after=$(find "$committed" -type f | wc -l)
  echo "$name: ${execs:-?} executions in $(( $(date +%s) - t0 )) s, status $rc, corpus $before -> $after inputs"
  if [ $rc -ne 0 ]; then grep -E -A10 'ERROR|runtime error' "$work.log" | head -n 40; bad=1; fi
  rm -rf "$work" "$work.log"
done
exit $bad
