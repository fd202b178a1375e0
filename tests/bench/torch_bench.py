"""torch_bench.py: time BERT fine-tuning steps in plain PyTorch, the speed
reference for `finemask bench`.

Same work as `finemask bench --mode full`: a BERT preset with a 2-label head,
random word pieces (two segments, no padding), labels b % 2, dropout 0.1 in
train mode, cross-entropy; AdamW (lr 2e-5, betas 0.9/0.999, eps 1e-8, weight
decay 0.01 except biases and LayerNorm) with a linear warm-up/decay schedule,
global gradient-norm clipping at 1.0. One warm-up step, then --steps timed
steps; per phase the median:
  forward    embeddings to loss
  backward   loss.backward()
  optimizer  clip_grad_norm_, AdamW step, schedule step, zero_grad
Prints one JSON line.

Memory: glibc's default malloc policy unless --malloc keep.

Threads: --threads N sets BLIS_NUM_THREADS and OMP_NUM_THREADS (torch does its
GEMMs through the system BLAS, i.e. BLIS here) and torch.set_num_threads(N);
default as finemask: BLIS_NUM_THREADS, else OMP_NUM_THREADS, else all cores.
BLIS_ARCH_TYPE is left as found.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def default_threads():
    for var in ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return len(os.sched_getaffinity(0))


def keep_freed_memory():
    """Ask glibc's malloc to serve every block from its heap and never give
    freed memory back to the kernel (--malloc keep). By default torch's large
    activation and gradient buffers are mmap'd and munmap'd every step, so each
    step pays for page faults on fresh zeroed pages; this removes about a third
    of those faults and some system time, but did not shorten the wall-clock
    step on the shared test machine, so it is off by default: the reference is
    torch as users run it. Returns True when glibc accepted both settings."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2 ** 31 - 1)) == 1 and ok
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="base")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--foreach", choices=("on", "off"), default="off",
                    help="AdamW's multi-tensor (foreach) implementation (default off)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--malloc", choices=("keep", "default"), default="default",
                    help="default: glibc's own policy (default); keep: glibc keeps freed memory for reuse")
    ap.add_argument("--verbose", action="store_true", help="per-step times on stderr")
    a = ap.parse_args(argv)
    if a.batch <= 0 or a.seq <= 1 or a.steps <= 0:
        ap.error("--batch and --steps must be positive and --seq at least 2")
    threads = a.threads if a.threads > 0 else default_threads()
    malloc_kept = keep_freed_memory() if a.malloc == "keep" else False
    # Before torch (and BLIS inside it) initialise.
    for var in ("BLIS_NUM_THREADS", "OMP_NUM_THREADS"):
        old = os.environ.get(var)
        if old is not None and old != str(threads):
            print(f"torch_bench: note: {var}={old} replaced by {threads}", file=sys.stderr)
        os.environ[var] = str(threads)

    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    import torch_bert

    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)  # dropout masks
    cfg = torch_bert.preset_config(a.config, num_labels=2)
    if a.seq > cfg["max_position_embeddings"]:
        ap.error(f"--seq {a.seq} exceeds max_position_embeddings {cfg['max_position_embeddings']}")
    model = torch_bert.init_random(cfg, a.seed).train()

    B, T = a.batch, a.seq
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(1, cfg["vocab_size"], (B, T), generator=g)
    types = (torch.arange(T) >= T // 2).long().expand(B, T).contiguous()
    mask = torch.ones(B, T, dtype=torch.long)
    labels = torch.arange(B) % 2

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if n.endswith("bias") or ".LayerNorm." in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-5, betas=(0.9, 0.999), eps=1e-8, foreach=(a.foreach == "on"))
    total = a.steps + 1
    warm = max(1, int(0.1 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    params = list(model.parameters())

    tf, tb, to, ts = [], [], [], []
    loss = None
    for s in range(-1, a.steps):
        t0 = time.perf_counter()
        loss = model(ids, types, mask, labels=labels)["loss"]
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if a.verbose:
            print(f"torch_bench: step {s + 1}/{a.steps}: forward {t1 - t0:.3f} s, backward {t2 - t1:.3f} s, "
                  f"optimizer {t3 - t2:.3f} s, loss {loss.item():.4f}", file=sys.stderr)
        if s >= 0:
            tf.append(t1 - t0)
            tb.append(t2 - t1)
            to.append(t3 - t2)
            ts.append(t3 - t0)

    # GEMM work of one step, counted from the shapes (backward = 2x forward).
    H, I, L, N = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], B * T
    fwd = L * (2 * N * H * H * 4 + 2 * N * H * I * 2 + 4 * B * T * T * H) + 2 * B * H * H + 2 * B * H * 2
    gflop = 3 * fwd / 1e9
    step = statistics.median(ts)
    out = {
        "program": "torch",
        "torch_version": torch.__version__,
        "config": a.config,
        "batch": B,
        "seq": T,
        "mode": "full",
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "blis_arch": os.environ.get("BLIS_ARCH_TYPE", "default"),
        "steps": a.steps,
        "forward_s": round(statistics.median(tf), 6),
        "backward_s": round(statistics.median(tb), 6),
        "optimizer_s": round(statistics.median(to), 6),
        "step_s": round(step, 6),
        "gemm_gflop_per_step_est": round(gflop, 3),
        "step_gflops": round(gflop / step, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "loss": round(loss.item(), 6),
        "foreach": a.foreach == "on",
        "malloc_keep": malloc_kept,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
