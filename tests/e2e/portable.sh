#!/usr/bin/env bash
# End to end: the default build runs on any x86-64-v2 CPU, as a binary built
# on a cluster's login node must on older compute nodes. Under qemu's user-mode
# emulation of a Nehalem (SSE4.2 and POPCNT, no AVX: x86-64-v2) the binary
# makes a model, times a step and fine-tunes a few steps; an instruction it may
# not use ends it with SIGILL. Then the same fine-tuning natively, where the
# AVX2/AVX-512 clones of the hot loops run: the scores agree (the bits may
# differ: the clones sum in vectors of other widths).
# Usage: portable.sh FINEMASK_BIN SOURCE_DIR. Exit 77 (skip): not x86-64, a
# FINEMASK_NATIVE build (made for its own CPU only), or qemu-user absent.
set -euo pipefail
bin=$1
[ "$(uname -m)" = x86_64 ] || { echo "skip: not an x86-64 machine"; exit 77; }
cache=$(dirname "$bin")/CMakeCache.txt
if [ -f "$cache" ] && grep -q '^FINEMASK_NATIVE:BOOL=ON' "$cache"; then
  echo "skip: a FINEMASK_NATIVE=ON build runs on its own CPU only"; exit 77
fi
command -v qemu-x86_64 >/dev/null || { echo "skip: qemu-x86_64 not installed (Debian package qemu-user)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
old=(qemu-x86_64 -cpu Nehalem)

"${old[@]}" "$bin" --version
"${old[@]}" "$bin" -q demo --only data --dir "$work/demo" --scale 0.02
"${old[@]}" "$bin" -q init --config tiny --seed 1 --vocab "$work/demo/data/vocab.txt" --out "$work/model"
"${old[@]}" "$bin" bench --config tiny --batch 2 --seq 16 --steps 1 --threads 1 > "$work/bench.txt" 2> "$work/bench.err" \
  || { cat "$work/bench.err"; echo "FAIL: bench under an x86-64-v2 CPU"; exit 1; }
grep -q "step " "$work/bench.txt" || { cat "$work/bench.txt"; echo "FAIL: no step time"; exit 1; }
grep "BLIS:" "$work/bench.err" || true
args=(--model "$work/model" --task SST-2 --data "$work/demo/data/glue" --mode supermask --max-steps 6
      --batch-size 8 --max-seq-length 24 --max-train-examples 64 --samples 1 --threads 1 --log-every 1)
"${old[@]}" "$bin" -q train "${args[@]}" --out "$work/v2" || { echo "FAIL: train under an x86-64-v2 CPU"; exit 1; }
"$bin" -q train "${args[@]}" --out "$work/native"
python3 - "$work/v2" "$work/native" <<'PY'
import json, sys
a, b = (json.load(open(d + "/metrics.json")) for d in sys.argv[1:])
la, lb = ([json.loads(l)["loss"] for l in open(d + "/log.jsonl") if '"loss"' in l] for d in sys.argv[1:])
print(f"x86-64-v2 (emulated): {a['score_name']} {a['score']:.4f}, losses {la}")
print(f"this CPU:             {b['score_name']} {b['score']:.4f}, losses {lb}")
assert len(la) == len(lb) > 0
for x, y in zip(la, lb):
    assert abs(x - y) <= 1e-3 * abs(y), "the losses differ by more than float rounding can explain"
PY
echo "portable e2e: OK"
