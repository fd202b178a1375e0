#!/usr/bin/env bash
# After --resume, the speed a run reports counts this session's work only: a
# run of 10 steps of 8 examples, killed while writing its checkpoint at step 6
# (so it resumes from step 3's), trains 7 steps and 56 examples in the resumed
# session, and its closing line must say so (the examples/s printed beside it
# is those 56 over this session's seconds, where it used to divide all 80 by
# them; the ETA is tested in test_progress). The same for pretrain --resume.
# Generated data (tests/mpi/mkdata.sh). Usage: resume_speed.sh FINEMASK_BIN SOURCE_DIR.
set -euo pipefail
bin=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$src/tests/mpi/mkdata.sh" "$bin" "$work"
args=(--model "$work/model" --task SST-2 --data "$work/glue" --max-seq-length 24 --batch-size 8 --max-steps 10
      --threads 1 --checkpoint-every 3)
if (FINEMASK_TEST_KILL_IN_CHECKPOINT=2 "$bin" -q train "${args[@]}" --out "$work/run" 2>/dev/null); then
  echo "FAIL: the checkpoint kill hook did not fire"; exit 1
fi
"$bin" train --resume "$work/run" 2> "$work/err"
grep -q "resuming .* at step 3 of 10" "$work/err" || { echo "FAIL: not resumed at step 3"; cat "$work/err"; exit 1; }
grep -q "examples/s: 56 examples in 7 steps this session" "$work/err" \
  || { echo "FAIL: the resumed session's work is not what its speed counts:"; grep done "$work/err"; exit 1; }
grep "done in" "$work/err"
echo "resume_speed: OK"
