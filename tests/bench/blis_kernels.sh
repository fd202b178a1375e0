#!/bin/bash
# blis_kernels.sh: a training step under each BLIS kernel set this CPU can run,
# side by side: the set finemask chooses (src/blas.h's rule), the set BLIS
# picks by itself (FINEMASK_NO_BLIS_FIX=1), and skx / haswell / zen3 named
# with BLIS_ARCH_TYPE. Runs alternate (every set once per round) so that other
# load on the machine falls on all of them; each figure is the median over
# rounds of `finemask bench`'s per-run medians.
#
# usage: tests/bench/blis_kernels.sh [FINEMASK_BIN] [--config base] [--batch 8] [--seq 128]
#                                    [--mode full] [--steps 3] [--threads N] [--rounds 3]
#
# FINEMASK_BIN defaults to $FINEMASK, else build/finemask of this checkout.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=python3

bin="" config=base batch=8 seq=128 mode=full steps=3 threads="" rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
    --config) config=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --seq) seq=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h | --help) sed -n '10,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "blis_kernels: unknown option '$1'" >&2; exit 2 ;;
    *) bin=$1; shift ;;
    esac
done
[ -n "$threads" ] || threads=$(nproc)
for v in batch seq steps rounds threads; do
    case "${!v}" in '' | *[!0-9]* | 0) echo "blis_kernels: --$v must be a positive integer, found '${!v}'" >&2; exit 2 ;; esac
done
if [ -z "$bin" ]; then
    for c in "${FINEMASK:-}" "$repo/build/finemask"; do
        if [ -n "$c" ] && [ -x "$c" ]; then bin=$c; break; fi
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "blis_kernels: no finemask binary (give its path, or set FINEMASK)" >&2; exit 2; }

# Kernel sets: label and environment. Numbers as Debian's BLIS 0.9 counts them.
sets=("chosen:" "blis-own:FINEMASK_NO_BLIS_FIX=1")
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
if has avx512f && has avx512dq && has avx512bw && has avx512vl; then sets+=("skx:BLIS_ARCH_TYPE=0"); fi
if has avx2 && has fma; then sets+=("haswell:BLIS_ARCH_TYPE=3" "zen3:BLIS_ARCH_TYPE=6"); fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset BLIS_ARCH_TYPE
export BLIS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
echo "blis_kernels: BERT-$config, batch $batch x $seq, mode $mode, $steps steps, $threads thread(s)," \
    "$rounds round(s); CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" >&2
for r in $(seq 1 "$rounds"); do
    for s in "${sets[@]}"; do
        label=${s%%:*} envs=${s#*:}
        echo "blis_kernels: round $r/$rounds: $label" >&2
        # shellcheck disable=SC2086
        if ! env $envs "$bin" bench --config "$config" --batch "$batch" --seq "$seq" --mode "$mode" \
            --steps "$steps" --threads "$threads" --json > "$tmp/out" 2> "$tmp/err"; then
            echo "blis_kernels: $label failed" >&2; cat "$tmp/err" >&2; exit 1
        fi
        grep '^{' "$tmp/out" | tail -n 1 | sed "s/^{/{\"label\": \"$label\", /" >> "$tmp/all.jsonl"
    done
done

"$py" - "$tmp/all.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r["label"] for r in rows))
by = {l: [r for r in rows if r["label"] == l] for l in labels}
med = lambda l, k: statistics.median(r[k] for r in by[l])
own = med("blis-own", "step_s")
r0 = rows[0]
print(f"BERT-{r0['config']}  batch {r0['batch']} x {r0['seq']}  mode {r0['mode']}  {r0['threads']} thread(s)  "
      f"median over {len(by[labels[0]])} run(s)")
print(f"{'kernels':<10}{'set':<9}{'step s':>9}{'step runs':>26}{'sgemm GFLOP/s':>15}{'step GFLOP/s':>14}{'vs BLIS own':>13}")
for l in labels:
    runs = " ".join("%.3f" % r["step_s"] for r in by[l])
    print(f"{l:<10}{by[l][0]['blis_arch']:<9}{med(l, 'step_s'):>9.3f}{runs:>26}{med(l, 'sgemm_gflops'):>15.1f}"
          f"{med(l, 'step_gflops'):>14.1f}{own / med(l, 'step_s'):>12.2f}x")
EOF
