#!/usr/bin/env bash
# mkdata.sh DIR: a tiny generated task in GLUE's SST-2 layout (DIR/glue/SST-2/
# {train,dev}.tsv: "sentence<TAB>label") and a tiny random BERT with its own
# 20-word vocabulary (DIR/model), for the MPI tests. Deterministic: the label
# is 1 when "good" occurs more often than "bad".
set -euo pipefail
bin=$1 dir=$2
mkdir -p "$dir/glue/SST-2"
{
  printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'
  for w in good bad the a film movie was is very not plot actors fun dull long short; do echo "$w"; done
} > "$dir/vocab.txt"
gen() { # N SEED
  awk -v n="$1" -v seed="$2" 'BEGIN {
    split("good bad the a film movie was is very not plot actors fun dull long short", w, " ");
    srand(seed); print "sentence\tlabel";
    for (i = 0; i < n; i++) {
      len = 4 + int(rand() * 10); s = ""; g = 0; b = 0;
      for (k = 0; k < len; k++) { x = w[1 + int(rand() * 16)]; g += x == "good"; b += x == "bad"; s = s (k ? " " : "") x }
      print s "\t" (g > b ? 1 : 0)
    } }'
}
gen 96 1 > "$dir/glue/SST-2/train.tsv"
gen 48 2 > "$dir/glue/SST-2/dev.tsv"
"$bin" -q init --config tiny --seed 3 --vocab "$dir/vocab.txt" --out "$dir/model" >/dev/null
