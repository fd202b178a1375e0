#!/usr/bin/env python3
"""summary.py: the measured side of tests/repro/paper.sh, as markdown.

usage: summary.py REPRO_DIR GLUE_DIR > results.md

Reads what paper.sh and the reports left in REPRO_DIR (pretrain.json,
times.tsv, tune/tune.tsv, repro/report/*.json|csv, repro-l0/report/, seeds/report/) and the
GLUE dev sets (for the majority-class scores, computed with the task's own
metric), and prints: pre-training, stage times, tuning, the results table
(Table 4's setting beside the controls), initial against final sparsity,
sparsity per kind of matrix and per layer, cross-task mask overlaps against
chance, the L0-close table, and the seed-noise table of jobs/repro-seeds.ini when it ran. Every number printed comes from those files.
"""
import csv
import json
import math
import os
import statistics
import sys
from collections import defaultdict

TASKS = ["SST-2", "CoLA", "MRPC", "STS-B", "RTE"]
METRIC = {"SST-2": "accuracy", "CoLA": "Matthews corr.", "MRPC": "F1", "STS-B": "Spearman", "RTE": "accuracy"}
KINDS = [("attention.self.query", "W_Q"), ("attention.self.key", "W_K"), ("attention.self.value", "W_V"),
         ("attention.output.dense", "W_O"), ("intermediate.dense", "W_I"), ("output.dense", "W_D")]


def tsv(path, header=True):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return (rows[0], rows[1:]) if header else (None, rows)


def majority(glue):
    """The dev-set score of always predicting the training set's majority class."""
    out = {}
    for task in TASKS:
        d = os.path.join(glue, task)
        if task == "STS-B":
            out[task] = (0.0, "a constant prediction has no rank correlation; 0 by convention")
            continue
        if task == "CoLA":
            tr = [r[1] for r in tsv(os.path.join(d, "train.tsv"), False)[1]]
            out[task] = (0.0, f"every prediction {max(set(tr), key=tr.count)}: MCC 0")
            continue
        col = {"SST-2": "label", "MRPC": "Quality", "RTE": "label"}[task]
        h, tr = tsv(os.path.join(d, "train.tsv"))
        i = h.index(col)
        labels = [r[i] for r in tr if len(r) > i]
        maj = max(set(labels), key=labels.count)
        h, dev = tsv(os.path.join(d, "dev.tsv"))
        i = h.index(col)
        gold = [r[i] for r in dev if len(r) > i]
        if task == "MRPC":
            p = sum(g == "1" for g in gold) / len(gold)
            out[task] = (2 * p / (1 + p), f"every pair a paraphrase ({maj}): F1 = 2p/(1+p), p = {p:.4f}")
        else:
            acc = sum(g == maj for g in gold) / len(gold)
            out[task] = (acc, f"every example '{maj}'")
    return out


def fmt(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.4f}"
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}"


def mean(xs):
    return statistics.mean(xs) if xs else float("nan")


def jobs_of(report):
    s = json.load(open(os.path.join(report, "science.json")))
    return s, [j for j in s["jobs"] if j.get("status") == "done"]


def pick(jobs, task, mode, weights="pretrained", variant=None):
    return [j["score"] for j in jobs if j["task"] == task and j["mode"] == mode and j.get("weights") == weights
            and (variant is None or j.get("variant") == variant)]


def main():
    rd, glue = sys.argv[1], sys.argv[2]
    p = print
    ptf = os.path.join(rd, "model", "pretrain.json")
    if os.path.exists(ptf):
        pt = json.load(open(ptf))
        p("## Pre-training\n")
        shuf = pt.get("eval_loss_final_shuffled")
        p(f"Held-out MLM loss {pt['eval_loss_initial']:.4f} before, {pt['eval_loss_final']:.4f} after "
          f"(perplexity {math.exp(pt['eval_loss_final']):.1f})"
          + (f"; {shuf:.4f} with each segment's tokens shuffled" if shuf is not None else "") + ".\n")
    if os.path.exists(os.path.join(rd, "times.tsv")):
        p("## Wall time per stage\n\n| stage | seconds | minutes | finished (UTC) |\n|---|---|---|---|")
        for r in tsv(os.path.join(rd, "times.tsv"), False)[1]:
            p(f"| {r[0]} | {r[1]} | {int(r[1]) / 60:.1f} | {r[2]} |")
        p()
    tt = os.path.join(rd, "tune", "tune.tsv")
    if os.path.exists(tt):
        p("## Tuning on SST-2's dev set (one seed, 10 mask samples)\n\n| trial | accuracy |\n|---|---|")
        for r in tsv(tt, False)[1]:
            p(f"| {r[0]} | {float(r[1]):.4f} |")
        best = dict(line.strip().split("=", 1) for line in open(os.path.join(rd, "tune", "best.env")) if "=" in line)
        p(f"\nChosen: mask_lr {best['mask_lr']}, ste {best['ste']}, nu_init {best['nu_init']}.\n")

    sci, jobs = jobs_of(os.path.join(rd, "repro", "report"))
    variants = sorted({j["variant"] for j in jobs if j["mode"] == "supermask"})
    maj = majority(glue)
    p("## Results (dev sets; mean ± std over seeds, or one value)\n")
    head = ["task (metric)", "majority", "head only", "full"] + [f"supermask {v}" for v in variants]
    head += [f"{v} shuffled" for v in variants[:1]] + [f"{v} random" for v in variants[:1]]
    p("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for t in TASKS:
        cells = [f"{t} ({METRIC[t]})", f"{maj[t][0]:.4f}", fmt(pick(jobs, t, "freeze")), fmt(pick(jobs, t, "full"))]
        cells += [fmt(pick(jobs, t, "supermask", "pretrained", v)) for v in variants]
        cells += [fmt(pick(jobs, t, "supermask", w, variants[0])) for w in ("shuffled", "random")]
        p("| " + " | ".join(cells) + " |")
    p("\nMajority class: " + "; ".join(f"{t}: {maj[t][1]}" for t in TASKS) + ".\n")
    gaps = [(t, mean(pick(jobs, t, "full")) - maj[t][0]) for t in TASKS]
    p("Full fine-tuning above the majority class by: " +
      ", ".join(f"{t} {g:+.4f}" if not math.isnan(g) else f"{t} not run" for t, g in gaps) + ".\n")

    p("## Initial against final sparsity (supermasks over pre-trained weights)\n")
    p("| initial | " + " | ".join(TASKS) + " | mean |\n|---|" + "---|" * (len(TASKS) + 1))
    by_init = defaultdict(list)
    for j in jobs:
        if j["mode"] == "supermask" and j.get("weights") == "pretrained" and j.get("final_sparsity") is not None:
            by_init[j["init_sparsity"]].append(j)
    for s in sorted(by_init):
        row = [fmt([j["final_sparsity"] for j in by_init[s] if j["task"] == t]) for t in TASKS]
        p(f"| {s:g} | " + " | ".join(row) + f" | {mean([j['final_sparsity'] for j in by_init[s]]):.4f} |")
    p()

    names = {j["name"]: j for j in jobs}
    kind_sp, layer_sp = defaultdict(list), defaultdict(list)
    with open(os.path.join(rd, "repro", "report", "layer_sparsity.csv"), newline="") as f:
        for r in csv.DictReader(f):
            j = names.get(r["job"])
            if not j or j.get("weights") != "pretrained" or j["mode"] != "supermask":
                continue
            if int(r["layer"]) < 0:
                continue
            kind = next((k for pat, k in KINDS if f".{pat}.weight" in r["tensor"]), None)
            if kind:
                kind_sp[(j["init_sparsity"], kind)].append(float(r["sparsity"]))
                layer_sp[(j["init_sparsity"], int(r["layer"]))].append(float(r["sparsity"]))
    inits = sorted({k[0] for k in kind_sp})
    if inits:
        p("## Sparsity per kind of matrix and per layer (supermasks over pre-trained weights, every task)\n")
        p("| initial | " + " | ".join(k for _, k in KINDS) + " |\n|---|" + "---|" * len(KINDS))
        for s in inits:
            p(f"| {s:g} | " + " | ".join(f"{mean(kind_sp[(s, k)]):.4f}" for _, k in KINDS) + " |")
        layers = sorted({k[1] for k in layer_sp})
        p("\n| initial | " + " | ".join(f"layer {l}" for l in layers) + " |\n|---|" + "---|" * len(layers))
        for s in inits:
            p(f"| {s:g} | " + " | ".join(f"{mean(layer_sp[(s, l)]):.4f}" for l in layers) + " |")
        p()

    fams = defaultdict(list)
    with open(os.path.join(rd, "repro", "report", "overlap.csv"), newline="") as f:
        for r in csv.DictReader(f):
            fams[r["family"]].append((float(r["shared_zero_fraction"]), float(r["random"])))
    if fams:
        p("## Cross-task mask overlaps against chance\n")
        p("| family | pairs | shared zeros (mean) | independent random masks (mean) | ratio |\n|---|---|---|---|---|")
        for fam, xs in fams.items():
            a, b = mean([x for x, _ in xs]), mean([y for _, y in xs])
            p(f"| {fam} | {len(xs)} | {a:.4f} | {b:.4f} | {a / b if b else float('nan'):.3f} |")
        p()

    l0 = os.path.join(rd, "repro-l0", "report", "science.json")
    if os.path.exists(l0):
        _, lj = jobs_of(os.path.join(rd, "repro-l0", "report"))
        p("## L0-close fine-tuning on MRPC (Table 3's freeze sets)\n\n| condition | F1 |\n|---|---|")
        groups = defaultdict(list)
        for j in lj:
            groups[(j["mode"], j.get("variant") or "")].append(j["score"])
        for (mode, var), xs in sorted(groups.items()):
            p(f"| {mode} {var} | {fmt(xs)} |")
        p()

    sd = os.path.join(rd, "seeds", "report", "science.json")
    if os.path.exists(sd):
        _, sj = jobs_of(os.path.join(rd, "seeds", "report"))
        tasks = [t for t in TASKS if any(j["task"] == t for j in sj)]
        conds = [("full", "full", "pretrained"), ("supermask s0", "supermask", "pretrained"),
                 ("s0 shuffled", "supermask", "shuffled"), ("s0 random", "supermask", "random")]
        seeds = sorted({j["seed"] for j in sj})
        p(f"## Seed noise (jobs/repro-seeds.ini: seeds {', '.join(map(str, seeds))}; mean ± std)\n")
        p("| task (metric) | " + " | ".join(c[0] for c in conds) + " | supermask - shuffled | supermask - random |")
        p("|---|" + "---|" * (len(conds) + 2))
        for t in tasks:
            cells = [fmt(pick(sj, t, m, w, "s0" if m == "supermask" else None)) for _, m, w in conds]
            sm = {j["seed"]: j["score"] for j in sj if j["task"] == t and j["mode"] == "supermask"
                  and j.get("weights") == "pretrained" and j.get("variant") == "s0"}
            diffs = []
            for w in ("shuffled", "random"):
                other = {j["seed"]: j["score"] for j in sj if j["task"] == t and j["mode"] == "supermask"
                         and j.get("weights") == w and j.get("variant") == "s0"}
                diffs.append(fmt([sm[k] - other[k] for k in sm if k in other]))
            p(f"| {t} ({METRIC[t]}) | " + " | ".join(cells + diffs) + " |")
        p("\nThe last two columns are paired by seed (the same data order and head initialisation).\n")


if __name__ == "__main__":
    main()
