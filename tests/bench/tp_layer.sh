#!/usr/bin/env bash
# Tensor-parallel BERT-base encoder layer on 2 ranks against the one-rank
# layer: forward + backward time (medians of REPS rounds, every variant timed
# in each round, so the ratios compare like with like on a busy machine), the
# sums per layer and the bytes each rank sends through MPI per layer step.
# See tests/bench/tp_layer.c for what each line means.
# Usage: tp_layer.sh BUILD_DIR [H A I B T REPS ONE_PT]
#   (default 768 12 3072 8 128 7 0: BERT-base, batch 8 x 128)
set -euo pipefail
build=$1
shift
bench=$build/bench_tp_layer
[ -x "$bench" ] || { echo "tp_layer.sh: $bench not built (cmake --build $build --target bench_tp_layer)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
cpu=$(lscpu | sed -n 's/^Model name: *//p')
fam=$(lscpu | sed -n 's/^CPU family: *//p')
echo "CPU: $cpu (family $fam), $(nproc --all) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
mpiexec -n 2 --oversubscribe --bind-to none "$bench" "$@"
