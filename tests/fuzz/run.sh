#!/usr/bin/env bash
# run.sh: the fuzz targets under ctest, where clang's libFuzzer is present.
#   run.sh build FUZZ_BUILD_DIR SOURCE_DIR       configure (clang, FM_FUZZ=ON) and build every fuzz_* target
#   run.sh run FUZZ_BUILD_DIR SOURCE_DIR NAME N  run fuzz target NAME for N executions with a fixed
#                                                seed from its committed corpus (copied: the committed
#                                                one is left as it is), so that a run explores the same
#                                                inputs on a fast or a slow machine
# A crash, a leak or an undefined-behaviour report fails the test; libFuzzer
# writes the input that caused it to FUZZ_BUILD_DIR/artifacts/. Exit 77 (skip,
# shown by ctest) where clang or its libFuzzer runtime is absent (Debian:
# clang, libclang-rt-14-dev; ./install.sh installs both).
set -euo pipefail
what=$1 dir=$2 src=$3

have_libfuzzer() {
  command -v clang >/dev/null || { echo "skip: clang not installed"; return 1; }
  local t
  t=$(mktemp -d)
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > "$t/f.c"
  if ! clang -fsanitize=fuzzer "$t/f.c" -o "$t/f" 2> "$t/err"; then
    echo "skip: clang cannot link libFuzzer ($(head -n 1 "$t/err"))"; rm -rf "$t"; return 1
  fi
  rm -rf "$t"
}
have_libfuzzer || exit 77

case $what in
build)
  CC=clang cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DFM_FUZZ=ON -DFM_WERROR=ON > "$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
  targets=()
  for f in "$src"/tests/fuzz/fuzz_*.c; do targets+=(--target "$(basename "$f" .c)"); done
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
  ;;
run)
  name=$4 runs=$5
  bin=$dir/$name
  [ -x "$bin" ] || { echo "FAIL: $bin not built (the fuzz_build test builds it)"; exit 1; }
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus" "$corpus.log"' EXIT
  n=0
  for seeds in "$src/tests/fuzz/corpus/${name#fuzz_}" "$src/tests/fuzz/corpus/$name"; do
    if [ -d "$seeds" ]; then cp -r "$seeds"/. "$corpus"/; n=$((n + $(find "$seeds" -type f | wc -l))); fi
  done
  [ "$n" -gt 0 ] || { echo "FAIL: no committed corpus for $name under tests/fuzz/corpus"; exit 1; }
  dict=()
  [ -f "$src/tests/fuzz/${name#fuzz_}.dict" ] && dict=(-dict="$src/tests/fuzz/${name#fuzz_}.dict")
  mkdir -p "$dir/artifacts"
  echo "$name: $runs executions (seed 1) from $n committed inputs"
  rc=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$bin" -runs="$runs" -seed=1 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" "${dict[@]}" \
    "$corpus" > "$corpus.log" 2>&1 || rc=$?
  grep -E 'stat::number_of_executed_units|stat::peak_rss' "$corpus.log" || true
  if [ $rc -ne 0 ]; then
    grep -E -A12 'ERROR|runtime error' "$corpus.log" | head -n 60
    grep -E 'Test unit written' "$corpus.log" || true
    echo "FAIL: $name exited with status $rc"
    rm -f "$corpus.log"
    exit 1
  fi
  rm -f "$corpus.log"
  ;;
*) echo "usage: run.sh build|run ..." >&2; exit 2 ;;
esac
