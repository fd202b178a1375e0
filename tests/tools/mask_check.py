"""mask_check.py: read finemask's mask files with nothing but json and numpy,
and check every other mask output against what that plain reader recovers.

A mask file is safetensors: 8 bytes little-endian header length N, N bytes of
JSON, the data. Each masked weight is a U8 tensor of packed bits, entry i of
the (row-major) weight in bit i % 8 of byte i // 8:

    bits = np.unpackbits(packed, bitorder="little")[:numel].reshape(shape)

with shape, the count of ones and the CRC-32C of the packed bytes in the
"tensors" entry of "__metadata__" (a JSON object as a string).

Usage (tests/e2e/mask_python.sh runs it):
    mask_check.py DIR
DIR holds model/ (the pre-trained model), a.safetensors and b.safetensors
(masks over it), a.stats.json (mask stats --json), ab.overlap.json (mask
overlap --json), a.u8.safetensors and a.f32.safetensors (mask export),
applied/ (mask apply of a) and distance.json (distance model applied --json).
Prints what it checked; exits 1 on the first disagreement.
"""
import json
import math
import os
import struct
import sys

import numpy as np


def crc32c(data):
    """CRC-32C (Castagnoli, reflected, init and final xor 0xffffffff), table-driven."""
    table = crc32c.table
    if table is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
        crc32c.table = table
    c = 0xFFFFFFFF
    for b in bytes(data):
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


crc32c.table = None

DTYPES = {"U8": np.uint8, "BOOL": np.bool_, "F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    """(metadata dict, {name: numpy array}) with json + numpy only."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = arr
    return meta, out


def read_mask(path):
    """(metadata, {name: 0/1 uint8 array of the weight's shape}, head), checking
    the padding bits, the counts of ones and the CRC-32Cs."""
    meta, t = read_safetensors(path)
    if meta.get("format") != "finemask-mask" or meta.get("version") != "1":
        fail(f"{path}: not a finemask mask file (format {meta.get('format')!r})")
    desc = json.loads(meta["tensors"])
    masks = {}
    for name, d in desc.items():
        packed = t[name]
        shape = d["shape"]
        numel = int(np.prod(shape))
        if packed.dtype != np.uint8 or packed.shape != ((numel + 7) // 8,):
            fail(f"{path}: {name}: packed tensor {packed.dtype} {packed.shape} for shape {shape}")
        allbits = np.unpackbits(packed, bitorder="little")
        if allbits[numel:].any():
            fail(f"{path}: {name}: bits set past numel")
        bits = allbits[:numel].reshape(shape)
        if int(bits.sum()) != d["ones"]:
            fail(f"{path}: {name}: {int(bits.sum())} ones, metadata says {d['ones']}")
        crc = crc32c(packed.tobytes())
        if f"{crc:08x}" != d["crc32c"]:
            fail(f"{path}: {name}: CRC-32C {crc:08x}, metadata says {d['crc32c']}")
        masks[name] = bits
    extra = set(t) - set(desc) - {"classifier.weight", "classifier.bias"}
    if extra:
        fail(f"{path}: undescribed tensors {sorted(extra)}")
    head = {k: t[k] for k in ("classifier.weight", "classifier.bias") if k in t}
    return meta, masks, head


def fail(msg):
    print(f"mask_check: FAIL: {msg}")
    sys.exit(1)


def layer_label(name):
    n = name[5:] if name.startswith("bert.") else name
    if n.startswith("embeddings."):
        return "embeddings"
    if n.startswith("encoder.layer."):
        return n.split(".")[2]
    return n.split(".")[0]


def close(a, b, rel=1e-12):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def main():
    d = sys.argv[1]
    p = lambda *x: os.path.join(d, *x)  # noqa: E731
    meta_a, a, head_a = read_mask(p("a.safetensors"))
    meta_b, b, _ = read_mask(p("b.safetensors"))
    total = sum(m.size for m in a.values())
    print(f"mask_check: {len(a)} masks, {total} entries read with json + numpy; counts and CRC-32Cs agree")

    # The unpacked exports hold exactly these bits, with the weights' shapes.
    for fname, dt in (("a.u8.safetensors", np.uint8), ("a.f32.safetensors", np.float32)):
        _, e = read_safetensors(p(fname))
        for name, bits in a.items():
            x = e[name]
            if x.dtype != dt or x.shape != bits.shape or not np.array_equal(x, bits.astype(dt)):
                fail(f"{fname}: {name} differs from the packed mask")
        if not np.array_equal(e["classifier.weight"], head_a["classifier.weight"]):
            fail(f"{fname}: the head differs")
    print("mask_check: export (U8 and F32) equals the packed bits exactly")

    # mask stats --json: counts per tensor, per layer, overall.
    st = json.load(open(p("a.stats.json")))
    if st["meta"]["model_fingerprint"] != meta_a["model_fingerprint"] or st["meta"]["seed"] != int(meta_a["seed"]):
        fail("stats: metadata differs from the file's")
    for row in st["tensors"]:
        bits = a["bert." + row["name"]]
        zeros = int(bits.size - bits.sum())
        if row["entries"] != bits.size or row["zeros"] != zeros or row["ones"] != int(bits.sum()):
            fail(f"stats: {row['name']}: counts differ")
        if row["sparsity"] != zeros / bits.size:
            fail(f"stats: {row['name']}: sparsity {row['sparsity']} != {zeros / bits.size}")
    layers = {}
    for name, bits in a.items():
        n, z = layers.get(layer_label(name), (0, 0))
        layers[layer_label(name)] = (n + bits.size, z + int(bits.size - bits.sum()))
    if [r["name"] for r in st["layers"]][0] != "embeddings":
        fail("stats: layers do not start with the embeddings")
    for row in st["layers"]:
        if (row["entries"], row["zeros"]) != layers[row["name"]]:
            fail(f"stats: layer {row['name']}: counts differ")
    zeros_all = sum(v[1] for v in layers.values())
    if st["all"]["entries"] != total or st["all"]["zeros"] != zeros_all:
        fail("stats: overall counts differ")
    print(f"mask_check: stats agree (overall sparsity {zeros_all / total:.6f}, {len(layers)} layer groups)")

    # mask overlap --json: common zeros by numpy, fractions, expectations.
    ov = json.load(open(p("ab.overlap.json")))
    pair = ov["pairs"][0]
    common_all = za_all = exp_num = 0
    for row in pair["tensors"]:
        x, y = a["bert." + row["name"]], b["bert." + row["name"]]
        common = int(np.sum((x == 0) & (y == 0)))
        za, zb = int(np.sum(x == 0)), int(np.sum(y == 0))
        if (row["common_zeros"], row["zeros_a"], row["zeros_b"]) != (common, za, zb):
            fail(f"overlap: {row['name']}: counts differ")
        if not close(row["shared_a"], common / za if za else None) or not close(row["expected_a"], zb / x.size):
            fail(f"overlap: {row['name']}: fractions differ")
        common_all += common
        za_all += za
        exp_num += za * (zb / x.size)
    al = pair["all"]
    if al["common_zeros"] != common_all or not close(al["shared_a"], common_all / za_all) \
            or not close(al["expected_a"], exp_num / za_all, 1e-9):
        fail("overlap: overall differs")
    print(f"mask_check: overlap agrees (A's zeros shared {common_all / za_all:.6f}, "
          f"random masks {exp_num / za_all:.6f})")

    # mask apply: weights = pre-trained * mask, the head from the mask file.
    _, orig = read_safetensors(p("model", "model.safetensors"))
    _, appl = read_safetensors(p("applied", "model.safetensors"))
    for name, w in appl.items():
        if name.startswith("classifier."):
            want = head_a[name]
        elif name in a:
            want = np.where(a[name] == 1, orig[name], np.float32(0))
        else:
            want = orig[name]
        if w.dtype != np.float32 or not np.array_equal(w.view(np.uint32), want.astype(np.float32).view(np.uint32)):
            fail(f"apply: {name} is not the pre-trained weight times the mask")
    cfg = json.load(open(p("applied", "config.json")))
    if len(cfg.get("id2label", {})) != head_a["classifier.bias"].shape[0]:
        fail("apply: config.json's labels do not match the head")
    print(f"mask_check: applied model = pre-trained * mask bit for bit ({len(appl)} tensors)")

    # distance --json: L1 (sum) and angle, recomputed in float64.
    dist = json.load(open(p("distance.json")))
    for row in dist["tensors"]:
        x = orig["bert." + row["name"]].astype(np.float64).ravel()
        y = appl["bert." + row["name"]].astype(np.float64).ravel()
        l1 = float(np.abs(x - y).sum())
        cos = float(x @ y / math.sqrt((x @ x) * (y @ y)))
        ang = math.acos(max(-1.0, min(1.0, cos))) / math.pi
        if not close(row["ab"]["l1"], l1, 1e-12) or not close(row["ab"]["angular"], ang, 1e-9):
            fail(f"distance: {row['name']}: l1 {row['ab']['l1']} vs {l1}, angular {row['ab']['angular']} vs {ang}")
    print(f"mask_check: distances agree ({len(dist['tensors'])} matrices)")

    # The float64 PyTorch reference loads the applied directory completely.
    tools = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, tools)
    try:
        import torch
        import torch_bert
        import st_io
    except ImportError as e:
        print(f"mask_check: torch reference skipped ({e})")
        return
    cfg, model = torch_bert.load_model_dir(p("applied"), dtype=torch.float64)
    missing, _ = torch_bert.load_state(model, st_io.read(p("applied", "model.safetensors")))
    if missing:
        fail(f"torch_bert: tensors missing from the applied model: {missing}")
    state = dict(model.named_parameters())
    q = "bert.encoder.layer.0.attention.self.query.weight"
    if not np.array_equal(state[q].detach().numpy(), appl[q].astype(np.float64)):
        fail("torch_bert: loaded weights differ")
    ids = torch.tensor([[2, 5, 7, 9, 3], [2, 4, 4, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    logits = model(ids, None, mask)["logits"]
    if not torch.isfinite(logits).all() or tuple(logits.shape) != (2, cfg["num_labels"]):
        fail(f"torch_bert: bad logits {logits}")
    print(f"mask_check: torch_bert loads the applied model (num_labels {cfg['num_labels']}) and runs it")


if __name__ == "__main__":
    main()
