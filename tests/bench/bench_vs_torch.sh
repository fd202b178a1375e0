#!/bin/bash
# bench_vs_torch.sh: time a BERT fine-tuning step in finemask and in plain
# PyTorch (tests/bench/torch_bench.py) under the same BLIS settings, and report
# the speedup and finemask's fraction of the BLIS sgemm rate against targets.
#
# usage: tests/bench/bench_vs_torch.sh [FINEMASK_BIN] [--config base] [--batch 8] [--seq 128]
#                                      [--steps 5] [--threads N] [--rounds 2]
#
# FINEMASK_BIN defaults to $FINEMASK, else build/finemask of this checkout.
# Both programs get BLIS_NUM_THREADS = OMP_NUM_THREADS = threads (default: all
# cores this process may use) and the same BLIS kernel set: BLIS_ARCH_TYPE as
# found, else the set finemask chooses on this CPU (src/blas.h), which torch's
# BLIS would not pick by itself.
# The programs alternate (finemask, torch, finemask, torch, ...) so that noise
# from other load on the machine falls on both; each phase's figure is the
# median over rounds of the per-run medians.
# Targets: step speedup (torch step / finemask step) >= 1.5 and finemask's step
# GEMM rate >= 0.80 of BLIS sgemm alone on the same shapes. The verdict is a
# report: the exit status is 0 unless a program failed or its output could not
# be read.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=python3

bin=""
config=base batch=8 seq=128 steps=5 threads="" rounds=2
usage() { sed -n '6,7p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --config) config=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --seq) seq=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "bench_vs_torch: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *)
        if [ -n "$bin" ]; then echo "bench_vs_torch: unexpected argument '$1'" >&2; exit 2; fi
        bin=$1; shift ;;
    esac
done
for v in batch seq steps rounds; do
    case "${!v}" in '' | *[!0-9]* | 0) echo "bench_vs_torch: --$v must be a positive integer, found '${!v}'" >&2; exit 2 ;; esac
done
if [ -z "$threads" ]; then threads=$(nproc); fi
case "$threads" in '' | *[!0-9]* | 0) echo "bench_vs_torch: --threads must be a positive integer, found '$threads'" >&2; exit 2 ;; esac
if [ -z "$bin" ]; then
    for c in "${FINEMASK:-}" "$repo/build/finemask"; do
        if [ -n "$c" ] && [ -x "$c" ]; then bin=$c; break; fi
    done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "bench_vs_torch: no finemask binary (give its path, or set FINEMASK)" >&2
    exit 2
fi

export BLIS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME OUTFILE CMD...: run a program, keep its JSON line, stop on failure.
run() {
    local name=$1 out=$2
    shift 2
    if ! "$@" >"$tmp/stdout" 2>"$tmp/stderr"; then
        echo "bench_vs_torch: $name failed: $*" >&2
        cat "$tmp/stderr" >&2
        exit 1
    fi
    local line
    line=$(grep '^{' "$tmp/stdout" | tail -n 1)
    if [ -z "$line" ]; then
        echo "bench_vs_torch: $name printed no JSON line: $*" >&2
        cat "$tmp/stdout" "$tmp/stderr" >&2
        exit 1
    fi
    printf '%s\n' "$line" >>"$out"
}

if [ -z "${BLIS_ARCH_TYPE:-}" ]; then
    run finemask "$tmp/arch.jsonl" "$bin" bench --config tiny --batch 1 --seq 8 --steps 1 --threads 1 --json
    BLIS_ARCH_TYPE=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["blis_arch_id"])' "$tmp/arch.jsonl")
    export BLIS_ARCH_TYPE
fi
echo "bench_vs_torch: BERT-$config, batch $batch x $seq, $steps steps, $threads thread(s)," \
    "BLIS_ARCH_TYPE=${BLIS_ARCH_TYPE:-unset}, $rounds round(s)" >&2
for r in $(seq 1 "$rounds"); do
    echo "bench_vs_torch: round $r/$rounds: finemask" >&2
    run finemask "$tmp/fm.jsonl" "$bin" bench --config "$config" --batch "$batch" --seq "$seq" --mode full \
        --steps "$steps" --threads "$threads" --json
    echo "bench_vs_torch: round $r/$rounds: torch" >&2
    run torch "$tmp/torch.jsonl" "$py" "$here/torch_bench.py" --config "$config" --batch "$batch" --seq "$seq" \
        --steps "$steps" --threads "$threads"
done

"$py" - "$tmp/fm.jsonl" "$tmp/torch.jsonl" "$bin" <<'EOF'
import json, statistics, sys

def load(path, who):
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"bench_vs_torch: {who} output, run {i}: not JSON ({e}): {line.strip()[:200]}")
    return rows

fm, pt = load(sys.argv[1], "finemask"), load(sys.argv[2], "torch")

def med(rows, key, who):
    try:
        return statistics.median(float(r[key]) for r in rows)
    except KeyError:
        sys.exit(f"bench_vs_torch: {who} output lacks '{key}'")

f0, t0 = fm[0], pt[0]
print(f"BERT-{f0.get('config')}  batch {f0.get('batch')} x {f0.get('seq')}  mode full  "
      f"threads {f0.get('threads')} (torch {t0.get('threads')})  BLIS kernels {f0.get('blis_arch')}  "
      f"torch {t0.get('torch_version')}")
print(f"median over {len(fm)} run(s) each of the per-run medians of {f0.get('steps')} steps")
print(f"{'phase':<12}{'finemask s':>12}{'torch s':>12}{'torch/fm':>10}")
for key, label in (("forward_s", "forward"), ("backward_s", "backward"), ("optimizer_s", "optimizer"),
                   ("step_s", "step")):
    a, b = med(fm, key, "finemask"), med(pt, key, "torch")
    print(f"{label:<12}{a:>12.3f}{b:>12.3f}{(b / a if a > 0 else float('nan')):>9.2f}x")
fs, ts = med(fm, "step_s", "finemask"), med(pt, "step_s", "torch")
speedup = ts / fs
frac = med(fm, "fraction_of_sgemm", "finemask")
gflop = med(fm, "gemm_gflop_per_step", "finemask")
print(f"step runs (s): finemask {' '.join('%.3f' % r['step_s'] for r in fm)}; "
      f"torch {' '.join('%.3f' % r['step_s'] for r in pt)}")
tgflop = med(pt, "gemm_gflop_per_step_est", "torch")
print(f"GEMM work per step: finemask {gflop:.1f} GFLOP at {gflop / fs:.1f} GFLOP/s, "
      f"torch {tgflop:.1f} GFLOP at {tgflop / ts:.1f} GFLOP/s (every position of the last layer), "
      f"BLIS sgemm alone on finemask's shapes {med(fm, 'sgemm_gflops', 'finemask'):.1f} GFLOP/s")
print(f"peak RSS: finemask {med(fm, 'peak_rss_mib', 'finemask'):.0f} MiB "
      f"(activations {med(fm, 'acts_mib', 'finemask'):.0f} MiB), torch {med(pt, 'peak_rss_mib', 'torch'):.0f} MiB")
# The step cannot be shorter than its GEMM work at BLIS's own rate: that
# bounds the speedup any finemask with this GEMM work and this BLIS can reach.
floor = gflop / med(fm, "sgemm_gflops", "finemask")
print(f"GEMM floor: finemask's GEMM work alone at BLIS's sgemm rate takes {floor:.3f} s; "
      f"so the speedup over torch is at most {ts / floor:.2f}x with this BLIS")
ok_s, ok_f = speedup >= 1.5, frac >= 0.80
print(f"speedup over torch      {speedup:6.2f}x  (target >= 1.50)  {'ok' if ok_s else 'MISSED'}")
print(f"fraction of BLIS sgemm  {frac:6.2f}   (target >= 0.80)  {'ok' if ok_f else 'MISSED'}")
print("PASSED" if ok_s and ok_f else "FAILED", "(report only; exit status 0)")
EOF
