#!/usr/bin/env python3
"""crosscheck.py: finemask's logits and first-batch gradients against an
independent PyTorch BERT (tests/tools/torch_bert.py) computed in float64.

For each case (a small model written by `finemask init` with the real uncased
vocabulary, its biases and LayerNorm parameters then randomised so that no
term of the math is trivially 0 or 1):
  - logits: `finemask predict --split dev` on GLUE dev sets against torch's
    logits (eval mode) on the same token ids;
  - gradients: `finemask train --max-steps 1 --no-shuffle --dropout 0
    --dump-grads` against torch's gradients of the same mean loss
    (cross-entropy, or MSE for STS-B) on the same first batch, every tensor;
    also the loss and the global gradient norm from the run's log.jsonl.
Token ids come from `finemask tokenize` (its agreement with HuggingFace's
tokenizer is tests/e2e/tokenizer_glue.sh's job), so this check isolates the
model math; texts and labels are read from the TSV files here, independently
of finemask's GLUE reader, and the example counts must agree.

Every comparison is reported as max |finemask - reference|, max |reference|
and their ratio (rel), per dev set for logits and per tensor for gradients;
rel above the tolerance fails the check (exit 1).

    crosscheck.py --finemask BIN --data DATA_DIR [--keep DIR] [--perturb NAME=EPS]

DATA_DIR holds glue/ and vocab/bert-base-uncased-vocab.txt. --perturb scales
the reference model's tensor NAME by (1 + EPS) after loading, to confirm that
the check catches a small change in a single tensor.
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import torch_bert  # noqa: E402

# Tolerances, on rel = max |finemask - reference| / max |reference|, finemask
# in float32 and the reference in float64, so rel is finemask's own rounding
# error as the model amplifies it.
#
# Measured on this suite (BLIS zen3, 1 thread; identical over repeated runs):
#   logits     rel <= 6.8e-7 (max abs 4.1e-7, logits of magnitude up to 1.3);
#   gradients  rel <= 1.4e-6 over all 41 tensors x 5 batches, typically 2e-7
#              to 8e-7 (worst: the embedding LayerNorm's weight and bias,
#              1.2e-6 and 1.35e-6); the key biases, exactly 0 in exact arithmetic, hold
#              a residue of 1.6e-7 of the key.weight gradient's scale;
#   loss, gradient norm (log.jsonl, printed to 8 digits) rel <= 1.1e-7.
# That is what float32 (eps 6e-8) gives over a path of a few dozen roundings
# with dot products of up to 128 terms. The bounds leave a margin of ~15x for
# other BLIS kernels, thread counts and compilers, and stay below what a real
# mistake gives: with --perturb, scaling a single tensor by 1 + 1e-5
# (classifier.weight, layer 0's intermediate.dense.weight) already fails on
# the gradients and the gradient norm, and by 1 + 1e-4 (a key or LayerNorm
# weight) fails at rel 1e-4 to 3e-4. For scale, on these models the tanh GELU
# in place of the erf one moves the logits by 8e-5 relative, and attending to
# padded keys moves them by 0.2.
TOL_LOGITS = 1e-5
TOL_GRADS = 2e-5
TOL_SCALARS = 1e-6

# GLUE TSV layouts as HuggingFace's processors read them:
# (header line, text columns, label column (-1: last), label names or None for STS-B's score).
LAYOUT = {
    "CoLA": (False, (3,), 1, ["0", "1"]),
    "SST-2": (True, (0,), 1, ["0", "1"]),
    "MRPC": (True, (3, 4), 0, ["0", "1"]),
    "STS-B": (True, (7, 8), -1, None),
    "QQP": (True, (3, 4), 5, ["0", "1"]),
    "MNLI": (True, (8, 9), -1, ["contradiction", "entailment", "neutral"]),
    "QNLI": (True, (1, 2), -1, ["entailment", "not_entailment"]),
    "RTE": (True, (1, 2), -1, ["entailment", "not_entailment"]),
}
DEV_FILE = {"MNLI": "dev_matched.tsv"}

# The cases: model (hidden_act, num_labels), dev sets for logits with the
# --max-seq-length used (short ones force truncation), and training batches
# (task, batch size, max sequence length) for gradients.
CASES = [
    dict(name="gelu/2 labels", act="gelu", labels=2, seed=11,
         logits=[("RTE", 128), ("SST-2", 128), ("MRPC", 32)],
         grads=[("RTE", 8, 64), ("SST-2", 16, 32)]),
    dict(name="gelu_new/2 labels", act="gelu_new", labels=2, seed=12,
         logits=[("RTE", 64), ("CoLA", 16)],
         grads=[("MRPC", 8, 48)]),
    dict(name="gelu_new/STS-B regression", act="gelu_new", labels=1, seed=13,
         logits=[("STS-B", 128)],
         grads=[("STS-B", 16, 64)]),
    dict(name="gelu/3 labels", act="gelu", labels=3, seed=14,
         logits=[("MNLI", 128)],
         grads=[("MNLI", 16, 64)]),
]

# A small BERT: L=2 H=64 A=2 I=128. initializer_range 0.1 (instead of 0.02)
# puts the activations at O(1): attention far from uniform, GELU and tanh in
# their curved range, logits of order 1.
MODEL_CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                    max_position_embeddings=512, type_vocab_size=2, initializer_range=0.1)


class CheckError(Exception):
    pass


def run(cmd, stdin=None, timeout=1800):
    """Run a command; its stdout (text). A non-zero exit raises CheckError with stderr."""
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise CheckError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr.strip()}")
    return p.stdout


def read_glue(data, task, split):
    """[(texts tuple, label)] of a GLUE file in file order; label an int index,
    STS-B's float score, as the task's processor gives them."""
    header, cols, lcol, names = LAYOUT[task]
    fname = "train.tsv" if split == "train" else DEV_FILE.get(task, "dev.tsv")
    path = os.path.join(data, task, fname)
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if header:
        rows = rows[1:]
    out = []
    for row in rows:
        if len(row) <= max(max(cols), lcol):
            if task == "QQP":
                continue
            raise CheckError(f"{path}: short row {row!r}")
        lab = row[lcol]
        out.append((tuple(row[c] for c in cols), float(lab) if names is None else names.index(lab)))
    return out


def tokenize(fm, model, texts, max_len):
    """Token ids of each text tuple from `finemask tokenize`, truncated to max_len (0: not)."""
    cmd = [fm, "tokenize", "--model", model] + (["--max-seq-length", str(max_len)] if max_len else [])
    for t in texts:
        if any("\n" in s or "\t" in s for s in t):
            raise CheckError(f"text with a tab or newline cannot go through tokenize: {t!r}")
    out = run(cmd, stdin="".join("\t".join(t) + "\n" for t in texts)).split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(texts):
        raise CheckError(f"finemask tokenize gave {len(out)} lines for {len(texts)} texts")
    return [[int(x) for x in line.split()] for line in out]


def make_batch(ids_list, sep_id, pad_id):
    """(input_ids, token_type_ids, attention_mask), padded to the longest sequence.
    Token type 0 up to and including the first [SEP], 1 after it."""
    B, T = len(ids_list), max(len(x) for x in ids_list)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    types = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for i, x in enumerate(ids_list):
        ids[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
        s = x.index(sep_id)
        types[i, s + 1:len(x)] = 1
    return ids, types, mask


def compare(got, ref):
    """(max |got - ref|, max |ref|, rel) of two arrays of the same shape."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise CheckError(f"shape {list(got.shape)} != reference {list(ref.shape)}")
    if not np.all(np.isfinite(got)):
        return float("inf"), float(np.abs(ref).max(initial=0)), float("inf")
    d = float(np.abs(got - ref).max(initial=0))
    m = float(np.abs(ref).max(initial=0))
    return d, m, (d / m if m > 0 else (0.0 if d == 0 else float("inf")))


class Report:
    def __init__(self):
        self.rows = []  # (section, item, diff, ref, rel, tol)
        self.failures = []

    def add(self, section, item, diff, ref, rel, tol):
        ok = rel <= tol
        self.rows.append((section, item, diff, ref, rel, tol, ok))
        print(f"  {item:<66} {diff:10.3e} {ref:10.3e} {rel:10.3e}{'' if ok else '  FAIL (tol %.0e)' % tol}")
        if not ok:
            self.failures.append(f"{section}: {item}: rel {rel:.3e} > {tol:.0e}")


def header(title):
    print(f"\n{title}")
    print(f"  {'tensor / set':<66} {'max|diff|':>10} {'max|ref|':>10} {'rel':>10}")


def perturb(model, spec):
    """Scale the parameter named in spec ("NAME=EPS") by (1 + EPS), if the model has it."""
    if not spec:
        return
    name, eps = spec.split("=")
    params = dict(model.named_parameters())
    if name not in params:
        raise CheckError(f"--perturb: no parameter named {name!r}")
    with torch.no_grad():
        params[name].mul_(1.0 + float(eps))


def make_model(fm, work, case, vocab):
    """finemask init a model for case, then randomise its biases and LayerNorm
    parameters (seeded), keeping every other tensor as finemask wrote it."""
    d = os.path.join(work, re.sub(r"[^A-Za-z0-9]+", "_", case["name"]))
    cfg = dict(MODEL_CONFIG, hidden_act=case["act"])
    cpath = d + ".config.json"
    with open(cpath, "w") as f:
        json.dump(cfg, f)
    run([fm, "init", "--config", cpath, "--seed", str(case["seed"]), "--out", d, "--vocab", vocab,
         "--num-labels", str(case["labels"])])
    wpath = os.path.join(d, "model.safetensors")
    tensors = st_io.read(wpath)
    rng = np.random.default_rng(case["seed"])
    for n, a in tensors.items():
        if n.endswith("LayerNorm.weight"):
            tensors[n] = (1.0 + 0.2 * rng.standard_normal(a.shape)).astype(np.float32)
        elif n.endswith(".bias"):
            tensors[n] = (0.1 * rng.standard_normal(a.shape)).astype(np.float32)
    st_io.write(wpath, tensors, metadata={"format": "pt"})
    return d


def check_logits(fm, model_dir, ref, data, task, max_len, out_dir, sep_id, pad_id, rep, section):
    examples = read_glue(data, task, "dev")
    texts = [t for t, _ in examples]
    ids = tokenize(fm, model_dir, texts, max_len)
    full = tokenize(fm, model_dir, texts, 0)
    truncated = sum(len(a) < len(b) for a, b in zip(ids, full))
    run([fm, "predict", "--model", model_dir, "--task", task, "--data", data, "--out", out_dir,
         "--split", "dev", "--max-seq-length", str(max_len), "--threads", "1"], timeout=1800)
    name = "MNLI-m" if task == "MNLI" else task
    with open(os.path.join(out_dir, f"{name}.logits.tsv")) as f:
        lines = f.read().rstrip("\n").split("\n")
    rows = [ln.split("\t") for ln in lines[1:]]
    if len(rows) != len(examples):
        raise CheckError(f"{task} dev: finemask wrote {len(rows)} logit rows, the file holds {len(examples)} examples")
    if [int(r[0]) for r in rows] != list(range(len(rows))):
        raise CheckError(f"{task} dev: logits.tsv indices are not 0..{len(rows) - 1}")
    got = np.array([[float(x) for x in r[1:]] for r in rows])
    want = []
    with torch.no_grad():
        for i in range(0, len(ids), 64):  # reference batches of 64, not predict's 32: other padding
            b = make_batch(ids[i:i + 64], sep_id, pad_id)
            want.append(ref(*b)["logits"].numpy())
    want = np.concatenate(want)
    d, m, r = compare(got, want)
    lens = [len(x) for x in ids]
    rep.add(section, f"logits {task} dev ({len(ids)} ex, len {min(lens)}-{max(lens)}, "
                     f"{truncated} truncated at {max_len})", d, m, r, TOL_LOGITS)


def check_grads(fm, model_dir, ref, data, task, B, max_len, run_dir, sep_id, pad_id, rep, section):
    examples = read_glue(data, task, "train")[:B]
    ids = tokenize(fm, model_dir, [t for t, _ in examples], max_len)
    full = tokenize(fm, model_dir, [t for t, _ in examples], 0)
    truncated = sum(len(a) < len(b) for a, b in zip(ids, full))
    grads_path = run_dir + ".grads.safetensors"
    run([fm, "train", "--model", model_dir, "--task", task, "--data", data, "--out", run_dir,
         "--max-steps", "1", "--no-shuffle", "--dropout", "0", "--batch-size", str(B),
         "--max-seq-length", str(max_len), "--dump-grads", grads_path, "--threads", "1",
         "--eval-batch-size", "64"], timeout=1800)
    got = st_io.read(grads_path)
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        log = json.loads(f.readline())

    b = make_batch(ids, sep_id, pad_id)
    labels = [lab for _, lab in examples]
    if ref.num_labels == 1:
        y = torch.tensor(np.array(labels, np.float32).astype(np.float64))  # finemask holds scores as float32
    else:
        y = torch.tensor(labels, dtype=torch.long)
    ref.zero_grad(set_to_none=True)
    out = ref(*b, labels=y)
    out["loss"].backward()
    params = dict(ref.named_parameters())
    want = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).numpy() for n, p in params.items()}
    if set(got) != set(want):
        extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
        raise CheckError(f"{task}: gradient names differ: finemask only {extra[:3]}, reference only {missing[:3]}")
    nonpad = int(b[2].sum())
    print(f"  batch: {task} train, first {len(ids)} examples, padded to {b[0].shape[1]} "
          f"({nonpad} real tokens of {b[0].numel()}), {truncated} truncated at {max_len}")
    loss_ref = float(out["loss"])
    norm_ref = float(torch.sqrt(sum((g.double() ** 2).sum() for g in map(torch.from_numpy, want.values()))))
    d = abs(log["loss"] - loss_ref)
    rep.add(section, f"loss (log.jsonl) {log['loss']:.8g}", d, abs(loss_ref), d / abs(loss_ref), TOL_SCALARS)
    d = abs(log["grad_norm"] - norm_ref)
    rep.add(section, f"grad_norm (log.jsonl) {log['grad_norm']:.8g}", d, norm_ref, d / norm_ref, TOL_SCALARS)
    for n in params:  # model order
        dd, m, r = compare(got[n], want[n])
        if n.endswith("attention.self.key.bias"):
            # Exactly zero in exact arithmetic: the key bias adds q.b_k to every
            # score of a query, which softmax cancels. The reference holds ~1e-18,
            # finemask the float32 residue of cancelling terms of the size of the
            # other key gradients, so that is its scale: the key.weight gradient's.
            m = float(np.abs(want[n[:-len("bias")] + "weight"]).max())
            r = dd / m
            n += " (=0; scale: key.weight)"
        rep.add(section, n, dd, m, r, TOL_GRADS)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--finemask", required=True)
    ap.add_argument("--data", required=True, help="directory with glue/ and vocab/")
    ap.add_argument("--keep", help="work in this directory and keep it (default: a temporary one)")
    ap.add_argument("--perturb", help="NAME=EPS: scale the reference's tensor NAME by 1+EPS")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    fm = os.path.abspath(a.finemask)
    vocab = os.path.join(a.data, "vocab", "bert-base-uncased-vocab.txt")
    work = a.keep or tempfile.mkdtemp(prefix="finemask-crosscheck-")
    os.makedirs(work, exist_ok=True)
    rep = Report()
    try:
        # A GLUE directory of links to the shared files; MNLI's mismatched dev
        # set (absent from the shared data, required by predict) is the matched one.
        glue = os.path.join(work, "glue")
        os.makedirs(glue, exist_ok=True)
        tasks = {t for c in CASES for t, _ in c["logits"]} | {g[0] for c in CASES for g in c["grads"]}
        for t in sorted(tasks):
            os.makedirs(os.path.join(glue, t), exist_ok=True)
            for fn in os.listdir(os.path.join(a.data, "glue", t)):
                dst = os.path.join(glue, t, fn)
                if not os.path.lexists(dst):
                    os.symlink(os.path.join(a.data, "glue", t, fn), dst)
        mm = os.path.join(glue, "MNLI", "dev_mismatched.tsv")
        if not os.path.lexists(mm):
            os.symlink(os.path.join(a.data, "glue", "MNLI", "dev_matched.tsv"), mm)

        with open(vocab, encoding="utf-8") as f:
            words = f.read().split("\n")
        sep_id = words.index("[SEP]")
        for case in CASES:
            model_dir = make_model(fm, work, case, vocab)
            cfg, ref = torch_bert.load_model_dir(model_dir, dtype=torch.float64)
            perturb(ref, a.perturb)
            if cfg["num_labels"] != case["labels"] or cfg["hidden_act"] != case["act"]:
                raise CheckError(f"{model_dir}: config.json has {cfg['num_labels']} labels, {cfg['hidden_act']}")
            section = f"{case['name']} (L{cfg['num_hidden_layers']} H{cfg['hidden_size']} "\
                      f"A{cfg['num_attention_heads']} I{cfg['intermediate_size']} {cfg['hidden_act']})"
            header(f"== {section}: logits, finemask predict vs torch float64")
            for task, max_len in case["logits"]:
                check_logits(fm, model_dir, ref, glue, task, max_len, model_dir + ".pred." + task,
                             sep_id, cfg["pad_token_id"], rep, section)
            for task, B, max_len in case["grads"]:
                header(f"== {section}: first-batch gradients, finemask train vs torch float64 backward")
                check_grads(fm, model_dir, ref, glue, task, B, max_len, model_dir + ".run." + task,
                            sep_id, cfg["pad_token_id"], rep, section)
    except (CheckError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        print(f"crosscheck: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    # Summary per kind of tensor: the worst over layers and cases.
    kinds = {}
    for _, item, d, m, r, _, _ in rep.rows:
        k = re.sub(r"layer\.\d+\.", "layer.*.", item)
        k = re.sub(r" \(.*", "", k) if k.startswith("logits") else k
        k = re.sub(r" [-0-9.e]+$", "", k)
        if k not in kinds or r > kinds[k][2]:
            kinds[k] = (d, m, r)
    print("\nworst per kind over all cases")
    print(f"  {'kind':<66} {'max|diff|':>10} {'max|ref|':>10} {'rel':>10}")
    for k, (d, m, r) in kinds.items():
        print(f"  {k:<66} {d:10.3e} {m:10.3e} {r:10.3e}")
    worst_l = max((r for _, i, _, _, r, _, _ in rep.rows if i.startswith("logits")), default=0)
    worst_g = max((r for _, i, _, _, r, _, _ in rep.rows if not i.startswith(("logits", "loss", "grad_norm"))),
                  default=0)
    print(f"\ncrosscheck: {len(rep.rows)} comparisons; worst rel: logits {worst_l:.2e} (tol {TOL_LOGITS:.0e}), "
          f"gradients {worst_g:.2e} (tol {TOL_GRADS:.0e}); {time.time() - t0:.1f} s")
    if rep.failures:
        print(f"crosscheck: FAIL: {len(rep.failures)} comparison(s) beyond tolerance:")
        for f in rep.failures[:20]:
            print(f"  {f}")
        return 1
    print("crosscheck: PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
