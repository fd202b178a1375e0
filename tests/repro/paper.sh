#!/usr/bin/env bash
# paper.sh: the paper's claims on real text, in about 90 minutes on 2 cores
# (not in CI). Stages, each skipped when its output is complete, so running
# the script again continues where it stopped:
#
#   corpus    English text from the GLUE training sets and installed Debian
#             packages (tests/repro/corpus.py; installs the packages with
#             apt-get when it can)
#   pretrain  a BERT-mini (L4/H256) pre-trained with MLM on it, with the real
#             bert-base-uncased vocabulary, on REPRO_RANKS ranks
#   tune      the supermask's open choices on SST-2's dev set: the mask
#             learning rate, then the STE form, then nu's magnitude, one at a
#             time from the defaults (tune/tune.tsv; the best go to the sweep)
#   sweep     jobs/repro.ini: SST-2, CoLA, MRPC, STS-B, RTE; full fine-tuning,
#             the head-only baseline (freeze set all), supermasks from 0% and
#             two higher initial sparsities over the pre-trained, shuffled and
#             random weights
#   l0close   jobs/repro-l0.ini: MRPC with the paper's freeze sets
#
# then prints the claims table and the wall time of each stage
# (REPRO_DIR/times.tsv). Environment: REPRO_DIR (runs/repro), REPRO_RANKS (2),
# REPRO_STEPS (pre-training steps, 2400), FINEMASK_DATA (../shared/data), and
# REPRO_SMOKE=1: every stage at a toy size (a tiny model, 64 training
# examples per job, one epoch), to check the pipeline in a few minutes;
# REPRO_MODEL=DIR: a pre-trained model directory (HuggingFace's layout:
# config.json, model.safetensors, vocab.txt; a real BERT from elsewhere, or
# a longer pre-training of one's own) to use instead of the corpus and
# pretrain stages.
# usage: tests/repro/paper.sh [FINEMASK_BIN]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(realpath "${1:-$src/build/finemask}")
data=${FINEMASK_DATA:-$src/../shared/data}
vocab=$data/vocab/bert-base-uncased-vocab.txt
dir=${REPRO_DIR:-$src/runs/repro}
ranks=${REPRO_RANKS:-2}
steps=${REPRO_STEPS:-2400}
smoke=${REPRO_SMOKE:-0}
size=(--config mini --batch 64 --seq 128)
cut=(--max-train-examples 4000 --epochs 3)
if [ "$smoke" = 1 ]; then
  steps=${REPRO_STEPS:-20} size=(--config tiny --batch 16 --seq 64) cut=(--max-train-examples 64 --epochs 1)
fi
[ -d "$data/glue" ] && [ -s "$vocab" ] || { echo "paper.sh: no GLUE data or vocabulary under $data" >&2; exit 1; }
mkdir -p "$dir"
export OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Long steps on a busy machine: give the ranks time to save on SIGTERM.
export OMPI_MCA_odls_base_sigkill_timeout=120
mpi=(mpiexec -n "$ranks" --oversubscribe --bind-to none)

stage() { # stage NAME: start timing NAME
  name=$1 t0=$(date +%s)
  echo "== $name ($(date -u +%H:%M:%S))"
}
done_stage() {
  local t=$(($(date +%s) - t0))
  echo "== $name: $t s"
  printf '%s\t%s\t%s\n' "$name" "$t" "$(date -u +%FT%TZ)" >> "$dir/times.tsv"
}

# 1. Corpus (not with REPRO_MODEL).
if [ -z "${REPRO_MODEL:-}" ] && [ ! -s "$dir/corpus.txt" ]; then
  stage corpus
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      wordnet-base dict-gcide python3.11-doc > "$dir/apt.log" 2>&1 || echo "apt-get failed: the corpus uses what is installed"
  fi
  python3 "$src/tests/repro/corpus.py" "$data" "$dir/corpus.txt" 2> >(tee "$dir/corpus.log" >&2)
  done_stage
fi

# 2. Pre-training (resumable: a killed run continues from its last state).
model=${REPRO_MODEL:-$dir/model}
[ -z "${REPRO_MODEL:-}" ] || [ -s "$model/config.json" ] || { echo "paper.sh: REPRO_MODEL=$model: no config.json" >&2; exit 1; }
if [ -z "${REPRO_MODEL:-}" ] && [ ! -s "$model/pretrain.json" ]; then
  stage pretrain
  "${mpi[@]}" "$bin" pretrain --corpus "$dir/corpus.txt" --vocab "$vocab" --out "$model" "${size[@]}" \
    --steps "$steps" --lr 5e-4 --warmup 0.05 --seed 1 --resume --checkpoint-every 100 --log-every 50
  done_stage
fi
[ ! -s "$model/pretrain.json" ] || python3 - "$model/pretrain.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"pre-training: held-out MLM loss {s['eval_loss_initial']:.4f} -> {s['eval_loss_final']:.4f}"
      + (f" ({s['eval_loss_final_shuffled']:.4f} with each segment's tokens shuffled)"
         if "eval_loss_final_shuffled" in s else ""))
PY

# 3. Tuning on SST-2's dev set, one choice at a time. Each trial is a
# `finemask train` run with the sweep's SST-2 settings; two run at a time.
tune=$dir/tune
mkdir -p "$tune"
common=(--model "$model" --task SST-2 --data "$data/glue" --mode supermask --lr 1e-3 --batch-size 32
        --max-seq-length 128 "${cut[@]}" --samples 10 --seed 1 --threads 1)
trial() { # trial NAME ARGS...: one run unless done; prints "NAME score"
  local name=$1
  shift
  [ -s "$tune/$name/metrics.json" ] || "$bin" -q train "${common[@]}" "$@" --out "$tune/$name" 2> "$tune/$name.err" \
    || { echo "trial $name failed" >&2; tail "$tune/$name.err" >&2; return 1; }
}
score() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["score"])' "$tune/$1/metrics.json"; }
gt() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$1" "$2"; }
best_of() { # best_of PREFIX VALUE...: the value whose trial scored highest (the first on a tie)
  local prefix=$1 best="" bs=-1 v s
  shift
  for v in "$@"; do
    s=$(score "$prefix$v")
    printf '%s\t%s\n' "$prefix$v" "$s" >> "$tune/tune.tsv"
    if gt "$s" "$bs"; then best=$v bs=$s; fi
  done
  echo "$best"
}
parallel() { # parallel CMD...: run the commands (one per argument) two at a time
  local pids=() c
  for c in "$@"; do
    eval "$c" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$ranks" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
  for c in "${pids[@]}"; do wait "$c"; done
}
if [ ! -s "$tune/best.env" ]; then
  stage tune
  : > "$tune/tune.tsv"
  lrs=(0.003 0.01 0.03 0.1 0.3 1)
  cmds=()
  for x in "${lrs[@]}"; do cmds+=("trial mlr$x --mask-lr $x --ste sigmoid"); done
  parallel "${cmds[@]}"
  mlr=$(best_of mlr "${lrs[@]}")
  parallel "trial ste-identity --mask-lr $mlr --ste identity"
  ste=sigmoid base=mlr$mlr
  gt "$(score ste-identity)" "$(score "mlr$mlr")" && ste=identity base=ste-identity
  printf 'ste-identity\t%s\n' "$(score ste-identity)" >> "$tune/tune.tsv"
  nus=(1 2)
  cmds=()
  for x in "${nus[@]}"; do cmds+=("trial nu$x --mask-lr $mlr --ste $ste --nu-init $x"); done
  parallel "${cmds[@]}"
  nu=$(best_of nu "${nus[@]}")
  gt "$(score "nu$nu")" "$(score "$base")" || nu=5
  printf 'mask_lr=%s\nste=%s\nnu_init=%s\n' "$mlr" "$ste" "$nu" > "$tune/best.env"
  done_stage
fi
cat "$tune/tune.tsv"
. "$tune/best.env"
echo "tuned: mask_lr $mask_lr, ste $ste, nu_init $nu_init"

# 4 and 5. The sweeps (finemask run resumes and skips finished jobs itself).
for job in repro repro-l0; do
  out=$dir/$job
  if [ ! -s "$out/report/science.json" ]; then
    stage "$job"
    sed -e "s/^mask_lr = .*/mask_lr = $mask_lr/" -e "s/^ste = .*/ste = $ste/" -e "s/^nu_init = .*/nu_init = $nu_init/" \
      "$src/jobs/$job.ini" > "$dir/$job.ini"
    if [ "$smoke" = 1 ]; then
      sed -i -e 's/^epochs = .*/epochs = 1/' -e 's/^max_train_examples = .*//' -e 's/^\[train\]$/[train]\nmax_train_examples = 64/' "$dir/$job.ini"
    fi
    "${mpi[@]}" "$bin" run "$dir/$job.ini" --model "$model" --data "$data/glue" --out "$out" --quiet-jobs
    done_stage
  fi
done

echo
sed -n '/^## Claims as measured/,/^## /p' "$dir/repro/report/science.md" | sed '$d'
echo
echo "wall time per stage (s):"
cat "$dir/times.tsv"
