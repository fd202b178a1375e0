#!/usr/bin/env bash
# Fault test: a damaged state file on --resume. A run is killed half-way
# through writing its second checkpoint (FINEMASK_TEST_KILL_IN_CHECKPOINT), so
# its directory holds the first checkpoint's state.safetensors, log.jsonl and
# options.json. The state is then damaged three ways: one byte flipped inside a
# tensor's data (the file still parses: only its CRC-32C tells), the file
# truncated, its header overwritten. Each resume must fail with a message that
# names the file (and the tensor), says it is damaged, exits non-zero, and
# leaves every file as it was (the damaged state too, for inspection); with the
# good state put back the resume ends byte-identical to an uninterrupted run.
# The same for pretrain --resume. Generated data (tests/mpi/mkdata.sh).
# Usage: corrupt_state.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1 src=$2
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"

same() { # same REF DIR: the same files, byte for byte
  diff <(cd "$1" && find . -type f | sort) <(cd "$2" && find . -type f | sort) \
    || { echo "FAIL: $2 holds other files than $1"; exit 1; }
  (cd "$1" && find . -type f) | while read -r f; do
    cmp "$1/$f" "$2/$f" || { echo "FAIL: $2/$f differs"; exit 1; }
  done
}
flip() { # flip FILE: one byte in the middle of the data section (after the header)
  $PY - "$1" <<'PY'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
start = 8 + struct.unpack("<Q", b[:8])[0]
b[start + (len(b) - start) // 2] ^= 0x10
open(p, "wb").write(b)
PY
}
damage() { # damage KIND FILE
  case $1 in
    flip) flip "$2" ;;
    truncate) truncate -s $(( $(stat -c %s "$2") / 2 )) "$2" ;;
    header) printf 'not a safetensors file' | dd of="$2" bs=1 seek=8 conv=notrunc 2>/dev/null ;;
  esac
}
# resume_refused NAME DIR STATE PATTERN CMD...: CMD fails naming STATE and PATTERN, DIR unchanged
resume_refused() {
  local name=$1 dir=$2 state=$3 pat=$4
  shift 4
  rm -rf "$work/before" && cp -r "$dir" "$work/before"
  if "$@" 2> "$work/err"; then echo "FAIL: $name: resumed from a damaged state"; exit 1; fi
  grep -q -- "$state" "$work/err" && grep -q "damaged" "$work/err" && grep -q -- "$pat" "$work/err" \
    || { echo "FAIL: $name: message"; cat "$work/err"; exit 1; }
  same "$work/before" "$dir"
  echo "$name: refused, nothing changed: $(grep error "$work/err")"
}

# ---- fine-tuning
args=(--model "$work/model" --task SST-2 --data "$work/glue" --max-seq-length 24 --batch-size 8 --max-steps 10
      --log-every 1 --threads 1 --lr 1e-3)
"$bin" -q train "${args[@]}" --out "$work/ref"
if FINEMASK_TEST_KILL_IN_CHECKPOINT=2 "$bin" -q train "${args[@]}" --checkpoint-every 3 --out "$work/run" 2>/dev/null; then
  echo "FAIL: the checkpoint kill hook did not fire"; exit 1
fi
rm -f "$work"/run/*.tmp.* # what a resume removes first: a half-written temporary, never the state
cp "$work/run/state.safetensors" "$work/state.good"
for kind in flip truncate header; do
  cp "$work/state.good" "$work/run/state.safetensors"
  damage $kind "$work/run/state.safetensors"
  pat=.; [ $kind = flip ] && pat="CRC-32C"
  resume_refused "train --resume, state $kind" "$work/run" "$work/run/state.safetensors" "$pat" \
    "$bin" -q train --resume "$work/run"
done
cp "$work/state.good" "$work/run/state.safetensors"
"$bin" -q train --resume "$work/run"
same "$work/ref" "$work/run"
echo "train --resume with the good state: the same run directory as an uninterrupted run"

# ---- pre-training
for i in $(seq 40); do echo "the film was good and the plot was fun $i"; echo "the movie was not very long"; done \
  > "$work/corpus.txt"
pt=(--corpus "$work/corpus.txt" --vocab "$work/vocab.txt" --config tiny --steps 8 --batch 4 --seq 16 --threads 1
    --log-every 1)
"$bin" -q pretrain "${pt[@]}" --out "$work/ptref"
if FINEMASK_TEST_KILL_IN_CHECKPOINT=2 "$bin" -q pretrain "${pt[@]}" --checkpoint-every 3 --out "$work/pt" 2>/dev/null; then
  echo "FAIL: the pretrain checkpoint kill hook did not fire"; exit 1
fi
rm -f "$work"/pt/*.tmp.*
cp "$work/pt/state.safetensors" "$work/ptstate.good"
damage flip "$work/pt/state.safetensors"
resume_refused "pretrain --resume, state flip" "$work/pt" "$work/pt/state.safetensors" "CRC-32C" \
  "$bin" -q pretrain "${pt[@]}" --resume --out "$work/pt"
cp "$work/ptstate.good" "$work/pt/state.safetensors"
"$bin" -q pretrain "${pt[@]}" --resume --out "$work/pt"
same "$work/ptref" "$work/pt"
echo "corrupt_state: OK"
