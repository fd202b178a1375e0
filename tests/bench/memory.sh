#!/usr/bin/env bash
# Peak resident memory per rank, measured, beside the arithmetic of what the
# rank's share needs: `finemask bench` under mpiexec (cli/bench_layout.c) for
# each model, mode and layout: 1 rank, then 2 and 4 ranks split as
# data-parallel replicas, as pipeline stages, as tensor-parallel ranks, and
# (4 ranks) as 2 stages of 2 tensor-parallel ranks. Each rank's row holds its
# measured peak (getrusage's ru_maxrss, after the training steps; "+eval"
# after an evaluation pass as well, on ranks that run the whole model) and
# the bytes of the parameters, gradients, AdamW moments, nu/masks and
# activations its share of the model and of the batch needs. A replica
# holds the whole model; a pipeline stage holds its own layers' parameters,
# gradients, moments and nu (the first also the embeddings), so S stages
# together hold about one rank's memory plus each process's own overhead; a
# tensor-parallel rank holds its shares of the encoder's split matrices and
# the whole of everything else (embeddings, LayerNorms, pooler, head).
#
# Usage: memory.sh FINEMASK [MPIEXEC]
# Environment:
#   MODELS      presets (default "base large")
#   MODES       default "full supermask"
#   RANKS       rank counts beyond 1 (default "2 4")
#   SPLITS      default "replicas stages tensor stages-tensor" (stages-tensor:
#               2 stages x n/2 tensor-parallel ranks, for n of 4 or more)
#   BATCH, SEQ  default 8 and 128
#   STEPS       timed steps after the warm-up step (default 0: the warm-up step
#               alone, which reaches the peak; no timing then)
#   LAYERS      "large=8" etc.: encoder layers instead of a preset's own (a
#               model's width on a machine too small for its depth)
#   BUDGET_MIB  a run is skipped when its estimate exceeds it: ranks x the
#               1-rank peak for replicas, 1.2 x the 1-rank peak + 300 MiB a
#               rank for stages and tensor-parallel splits (default 14000: the machine's other work
#               keeps the rest)
#   OUT         directory for each run's JSON (default: a temporary one)
set -euo pipefail
bin=$1 mpiexec=${2:-mpiexec}
models=${MODELS:-base large} modes=${MODES:-full supermask} ranks=${RANKS:-2 4}
splits=${SPLITS:-replicas stages tensor stages-tensor} batch=${BATCH:-8} seq=${SEQ:-128} steps=${STEPS:-0}
budget=${BUDGET_MIB:-14000}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
layers_of() { # MODEL: --layers N when LAYERS names it
  local kv
  for kv in ${LAYERS:-}; do [ "${kv%%=*}" = "$1" ] && echo "--layers ${kv#*=}"; done
  return 0
}
# bench MODEL MODE RANKS STAGES [TP]: one run's JSON into $out, its name on stdout
bench() {
  local tp=${5:-1}
  local f="$out/$1.$2.n$3.s$4.tp$tp.json"
  # shellcheck disable=SC2046
  "$mpiexec" --oversubscribe --bind-to none -n "$3" "$bin" bench --config "$1" $(layers_of "$1") --mode "$2" \
    --batch "$batch" --seq "$seq" --steps "$steps" --threads 1 --stages "$4" --tensor-parallel "$tp" --json \
    > "$f" 2> "$f.err" \
    || { echo "memory.sh: $1 $2 on $3 rank(s), $4 stage(s) x $tp tensor-parallel failed:" >&2; tail -n 5 "$f.err" >&2; return 1; }
  echo "$f"
}
show() { # JSON SPLIT: one line per rank
  python3 - "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for r in j["per_rank"]:
    ev = r.get("peak_rss_eval_mib")
    print("| BERT-%s (%d layers) | %s | %d | %s | %d | %d | %d | %d | %.0f | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |" % (
        j["config"], j["layers"], j["mode"], j["ranks"], sys.argv[2], r["rank"], r["stage"], r["replica"], r["tp"],
        r["peak_rss_mib"], "%.0f" % ev if ev is not None else "-", r["params_mib"], r["grads_mib"],
        r["moments_mib"], r["nu_masks_mib"], r["acts_mib"], r["share_mib"]))
PY
}
peak_of() { python3 -c 'import json,sys; print(int(max(r["peak_rss_mib"] for r in json.load(open(sys.argv[1]))["per_rank"])))' "$1"; }
echo "finemask bench, batch $batch x $seq, a warm-up step and $steps more, 1 thread per rank; $(nproc --all) core(s): $(lscpu | sed -n 's/^Model name: *//p')"
echo "MiB per rank: measured peak resident (after the steps; +eval: after an evaluation too) | this rank's share: params, grads, AdamW moments, nu/masks, activations, their sum"
echo
echo "| model | mode | ranks | split | rank | stage | replica | tp | peak | peak+eval | params | grads | moments | nu/masks | acts | share |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for model in $models; do
  for mode in $modes; do
    f=$(bench "$model" "$mode" 1 1) || continue
    show "$f" "-"
    one=$(peak_of "$f")
    for n in $ranks; do
      for split in $splits; do
        s=1 tp=1 est=$((n * one))
        case $split in
          stages) s=$n ;;
          tensor) tp=$n ;;
          stages-tensor) [ "$n" -ge 4 ] || continue; s=2 tp=$((n / 2)) ;;
        esac
        [ "$split" != replicas ] && est=$((one * 12 / 10 + 300 * n))
        if [ "$est" -gt "$budget" ]; then
          echo "| BERT-$model | $mode | $n | $split | skipped: estimated $est MiB (1-rank peak $one MiB) exceeds BUDGET_MIB=$budget ||||||||||||"
          continue
        fi
        f=$(bench "$model" "$mode" "$n" "$s" "$tp") || continue
        show "$f" "$split"
      done
    done
  done
done
echo
echo "(each run's JSON: $out)"
