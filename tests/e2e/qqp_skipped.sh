#!/usr/bin/env bash
# QQP's processor skips rows with too few fields (GLUE's QQP train.tsv has a
# few); finemask skips them too, and must say how many: in the log (stderr) of
# train and eval, in metrics.json ("skipped_rows": {"train": N, "dev": M}) and
# in eval's JSON. A generated QQP with 3 short training rows and 1 short dev
# row. Usage: qqp_skipped.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
mkdir -p "$work/glue/QQP"
qqp() { # qqp SPLIT SHORT_EVERY: id qid1 qid2 question1 question2 is_duplicate, every SHORT_EVERY-th row cut short
  printf 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n'
  tail -n +2 "$work/glue/SST-2/$1.tsv" | awk -F'\t' -v k="$2" '{
    if (NR % k == 0) print NR "\t" 2*NR "\t" $1;   # 3 fields: skipped
    else print NR "\t" 2*NR "\t" 2*NR+1 "\t" $1 "\tis the " $1 "\t" $2 }'
}
qqp train 30 > "$work/glue/QQP/train.tsv" # 96 rows: 3 short
qqp dev 30 > "$work/glue/QQP/dev.tsv"     # 48 rows: 1 short
"$bin" train --model "$work/model" --task QQP --data "$work/glue" --max-seq-length 32 --batch-size 8 --max-steps 2 \
  --threads 1 --out "$work/run" 2> "$work/err"
grep -q "QQP/train.tsv: 3 row(s) with too few fields skipped" "$work/err" \
  && grep -q "QQP/dev.tsv: 1 row(s) with too few fields skipped" "$work/err" \
  || { echo "FAIL: train's log does not report the skipped rows"; cat "$work/err"; exit 1; }
/usr/bin/python3 - "$work/run/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m.get("skipped_rows") == {"train": 3, "dev": 1}, m.get("skipped_rows")
assert m["train_examples"] == 93 and m["dev"]["examples"] == 47, (m["train_examples"], m["dev"])
PY
"$bin" eval --model "$work/run/model" --task QQP --data "$work/glue" --max-seq-length 32 --out "$work/eval.json" \
  > /dev/null 2> "$work/err"
grep -q "QQP/dev.tsv: 1 row(s) with too few fields skipped" "$work/err" || { echo "FAIL: eval's log"; exit 1; }
/usr/bin/python3 -c 'import json,sys; j = json.load(open(sys.argv[1])); assert j.get("skipped_rows") == 1, j' "$work/eval.json"
# other tasks do not skip, and say nothing of it
"$bin" -q train --model "$work/model" --task SST-2 --data "$work/glue" --max-seq-length 32 --max-steps 1 --threads 1 \
  --out "$work/sst"
! grep -q skipped_rows "$work/sst/metrics.json" || { echo "FAIL: skipped_rows for SST-2"; exit 1; }
echo "qqp_skipped: OK"
