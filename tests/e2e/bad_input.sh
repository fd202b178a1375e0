#!/usr/bin/env bash
# Fault test: a model and data that do not fit each other are refused before
# any training, with a message naming both numbers (or the file and line),
# a non-zero exit, and nothing written into the run directory.
#  1. A vocab.txt longer than config.json's vocab_size (its last ids have no
#     word embedding; they used to read the position table): train and eval
#     refuse it, naming both sizes.
#  2. A model with type_vocab_size 1 given a sentence-pair task (MRPC): the
#     second sentence's token type 1 has no embedding; refused naming the file
#     and first line. The same model still trains on a single-sentence task.
#  3. Pre-training with such a config (rows pair two segments): refused.
# Generated data (tests/mpi/mkdata.sh); no GLUE download needed.
# Usage: bad_input.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
common=(--data "$work/glue" --max-seq-length 24 --batch-size 8 --max-steps 3 --threads 1)

refused() { # refused NAME ERRFILE PATTERN...: the command failed and its message has every pattern
  local name=$1 err=$2
  shift 2
  for p in "$@"; do
    grep -q -- "$p" "$err" || { echo "FAIL: $name: no '$p' in the message:"; cat "$err"; exit 1; }
  done
  echo "$name: refused: $(grep error "$err" | head -1)"
}

# 1. vocab.txt longer than vocab_size: two words the data uses appended.
cp -r "$work/model" "$work/longvocab"
printf 'superb\nawful\n' >> "$work/longvocab/vocab.txt"
sed -i 's/^\(.*\)good\(.*\)\t1$/\1superb\2\t1/' "$work/glue/SST-2/train.tsv"
if "$bin" -q train --model "$work/longvocab" --task SST-2 "${common[@]}" --out "$work/run1" 2> "$work/err"; then
  echo "FAIL: a vocab.txt of 23 tokens was accepted with vocab_size 21"; exit 1
fi
refused "train, vocab.txt longer than vocab_size" "$work/err" "23 tokens" "vocab_size 21"
[ ! -e "$work/run1" ] || { echo "FAIL: the refused run wrote $work/run1"; exit 1; }
if "$bin" -q eval --model "$work/longvocab" --task SST-2 --data "$work/glue" --out "$work/eval.json" 2> "$work/err"; then
  echo "FAIL: eval accepted a vocab.txt longer than vocab_size"; exit 1
fi
refused "eval, vocab.txt longer than vocab_size" "$work/err" "23 tokens" "vocab_size 21"
[ ! -e "$work/eval.json" ] || { echo "FAIL: the refused eval wrote its output"; exit 1; }

# 2. type_vocab_size 1 and sentence pairs.
sed 's/"type_vocab_size": 2/"type_vocab_size": 1/' "$work/model/config.json" > "$work/onetype.json"
"$bin" -q init --config "$work/onetype.json" --seed 3 --vocab "$work/vocab.txt" --out "$work/onetype" > /dev/null
mkdir -p "$work/glue/MRPC"
{
  printf 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n'
  printf '1\t1\t2\tthe film was good\tthe movie was good\n'
  printf '0\t3\t4\tthe plot was dull\tthe actors were fun\n'
} > "$work/glue/MRPC/train.tsv"
cp "$work/glue/MRPC/train.tsv" "$work/glue/MRPC/dev.tsv"
if "$bin" -q train --model "$work/onetype" --task MRPC "${common[@]}" --out "$work/run2" 2> "$work/err"; then
  echo "FAIL: sentence pairs accepted by a model with type_vocab_size 1"; exit 1
fi
refused "train, pairs with type_vocab_size 1" "$work/err" "MRPC/train.tsv:2:" "type_vocab_size 1"
[ ! -e "$work/run2" ] || { echo "FAIL: the refused run wrote $work/run2"; exit 1; }
"$bin" -q train --model "$work/onetype" --task SST-2 "${common[@]}" --out "$work/run3" \
  || { echo "FAIL: a single-sentence task on a type_vocab_size 1 model"; exit 1; }

# 3. Pre-training rows pair two segments: type_vocab_size 1 is refused.
printf 'the film was good\nthe movie was bad\nthe plot was dull\n' > "$work/corpus.txt"
if "$bin" -q pretrain --corpus "$work/corpus.txt" --vocab "$work/vocab.txt" --config "$work/onetype.json" \
  --steps 2 --batch 2 --seq 16 --out "$work/pt" 2> "$work/err"; then
  echo "FAIL: pretrain accepted type_vocab_size 1"; exit 1
fi
refused "pretrain, type_vocab_size 1" "$work/err" "type_vocab_size 1"
[ ! -e "$work/pt/model.safetensors" ] || { echo "FAIL: the refused pretrain wrote a model"; exit 1; }
echo "bad_input: OK"
