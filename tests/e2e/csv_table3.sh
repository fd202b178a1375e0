#!/usr/bin/env bash
# The report's CSV files read back with Python's csv module (RFC 4180) after a
# sweep with jobs/table3.ini's kind of freeze sets (key | key,word_embeddings):
# every record has the header's fields, and the freeze set with a comma is one
# field. One seed: science.md shows "(n=1)", never "± 0.0000".
# Generated data (tests/mpi/mkdata.sh). Usage: csv_table3.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
cat > "$work/job.ini" <<INI
[run]
model = $work/model
data = $work/glue
out = $work/out
[sweep]
tasks = SST-2
modes = full, freeze
seeds = 1
[freeze]
sets = key | key,word_embeddings
[train]
lr = 1e-3
batch_size = 8
max_steps = 6
max_seq_length = 24
[layout]
threads = 1
INI
"$bin" -q run "$work/job.ini"
/usr/bin/python3 - "$work/out/report" <<'PY'
import csv, glob, os, sys
d = sys.argv[1]
files = sorted(glob.glob(f"{d}/*.csv"))
assert len(files) == 6, files
for f in files:
    rows = list(csv.reader(open(f, newline="")))
    assert rows, f
    bad = [r for r in rows if len(r) != len(rows[0])]
    assert not bad, (os.path.basename(f), rows[0], bad)
scores = list(csv.DictReader(open(f"{d}/scores.csv", newline="")))
assert sorted(r["variant"] for r in scores) == ["", "key", "key,word_embeddings"], scores
assert all(r["jobs"] == "1" and r["score_std"] == "" for r in scores), scores
sp = list(csv.DictReader(open(f"{d}/sparsity.csv", newline="")))
assert sorted(r["variant"] for r in sp) == ["", "key", "key,word_embeddings"], sp
md = open(f"{d}/science.md").read()
assert "(n=1)" in md and "± 0.0000" not in md, md
print("csv_table3: every CSV parses; variants", sorted(r["variant"] for r in scores))
PY
echo "csv_table3: OK"
