"""torch_bert.py: an independent plain-PyTorch BERT for finemask's benchmarks
and numerical cross-checks.

It computes what DESIGN.md section 1 specifies (HuggingFace's BertModel math):
embeddings (word + token type + position, LayerNorm, dropout); post-LN encoder
layers (q/k/v, scaled dot-product attention per head with an additive mask
(1 - mask) * finfo(float32).min, softmax, dropout, output dense, dropout,
residual, LayerNorm; intermediate dense, GELU, output dense, dropout,
residual, LayerNorm); pooler tanh(W_p h_0 + b_p); the task head (dropout,
linear; cross-entropy, or MSE when num_labels == 1); the optional MLM head
(dense, GELU, LayerNorm, decoder tied to the word embeddings plus a bias;
cross-entropy ignoring label -100).

Parameter names are HuggingFace's (bert.embeddings.word_embeddings.weight,
bert.encoder.layer.0.attention.self.query.weight, classifier.weight,
cls.predictions.bias, ...), so weights and gradients can be exchanged with
finemask as safetensors under the same names. As in HuggingFace, the word
embedding row of pad_token_id is a padding_idx: it never receives a gradient.

Importable:
    cfg, model = load_model_dir("DIR")         # config.json + model.safetensors
    model = init_random(cfg, seed=1)           # HF-style initialisation
    out = model(ids, token_type_ids, attention_mask, labels=..., mlm_labels=...)
    save_grads(model, "grads.safetensors")

Command line:
    python3 torch_bert.py selftest
    python3 torch_bert.py run --model DIR --inputs IN.safetensors --out OUT.safetensors
                              [--grads G.safetensors] [--double] [--train --seed N]
    python3 torch_bert.py init --config tiny --seed 1 --out DIR [--num-labels 2] [--mlm]
IN holds input_ids (B, T) and optionally attention_mask, token_type_ids,
labels (B) (float for regression) and mlm_labels (B, T). OUT gets logits,
loss, pooled_output, last_hidden_state and mlm_logits where they apply.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

# Google's BERT sizes (Turc et al.): name -> (layers, hidden); heads H/64, I = 4H.
PRESETS = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}

# bert-base-uncased values, used for fields config.json leaves out.
DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}

GELU_FORMS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}


def preset_config(name, num_labels=2, with_mlm=False):
    """Config dict of a named preset (see PRESETS)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (expected {', '.join(PRESETS)})")
    layers, hidden = PRESETS[name]
    cfg = dict(DEFAULTS)
    cfg.update(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=hidden // 64,
               intermediate_size=4 * hidden, num_labels=num_labels, with_mlm=with_mlm)
    return cfg


def normalize_config(raw, where="config"):
    """A config dict with defaults filled in and the fields this model uses checked.

    num_labels: from id2label's size, else "num_labels", else 0 (no task head),
    as finemask reads it. with_mlm: kept if given, else False."""
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    if cfg.get("model_type", "bert") != "bert":
        raise ValueError(f"{where}: model_type must be 'bert', found {cfg['model_type']!r}")
    if cfg["position_embedding_type"] != "absolute":
        raise ValueError(f"{where}: position_embedding_type must be 'absolute', found "
                         f"{cfg['position_embedding_type']!r}")
    if cfg["hidden_act"] not in GELU_FORMS:
        raise ValueError(f"{where}: hidden_act must be one of {sorted(GELU_FORMS)}, found {cfg['hidden_act']!r}")
    for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size"):
        if type(cfg[k]) is not int or cfg[k] <= 0:
            raise ValueError(f"{where}: {k} must be a positive integer, found {cfg[k]!r}")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError(f"{where}: hidden_size {cfg['hidden_size']} is not a multiple of "
                         f"num_attention_heads {cfg['num_attention_heads']}")
    if "id2label" in raw and raw["id2label"] is not None:
        cfg["num_labels"] = len(raw["id2label"])
    else:
        cfg["num_labels"] = int(raw.get("num_labels", 0) or 0)
    cfg["with_mlm"] = bool(raw.get("with_mlm", False))
    return cfg


# ---------------------------------------------------------------------------
# Element-wise pieces. The model uses the fast built-ins; the *_ref forms spell
# out the formulas and are what selftest() checks the built-ins against.


def gelu(x, form):
    """GELU: form "none" is the exact erf form, "tanh" the tanh approximation."""
    return F.gelu(x, approximate=form)


def gelu_ref(x, form):
    if form == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def layer_norm_ref(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance, as LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * w + b


def additive_mask(attention_mask, dtype):
    """(B, T) of 1 (attend) / 0 (padding) -> (B, 1, 1, T) additive term."""
    m = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - m) * torch.finfo(torch.float32).min


def attention_core(q, k, v, add_mask, dropout):
    """q, k, v: (B, A, T, d); add_mask: (B, 1, 1, T). Returns (B, A, T, d)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores + add_mask
    probs = dropout(torch.softmax(scores, dim=-1))
    return torch.matmul(probs, v)


def attention_ref(q, k, v, add_mask):
    """The same without dropout, one (batch, head, query) at a time, softmax by hand."""
    B, A, T, d = q.shape
    out = torch.zeros_like(q)
    for b in range(B):
        for a in range(A):
            for i in range(T):
                s = torch.stack([(q[b, a, i] * k[b, a, j]).sum() / math.sqrt(d) + add_mask[b, 0, 0, j]
                                 for j in range(T)])
                e = torch.exp(s - s.max())
                p = e / e.sum()
                out[b, a, i] = (p[:, None] * v[b, a]).sum(0)
    return out


# ---------------------------------------------------------------------------
# Modules, nested so that parameter names match HuggingFace's.


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], H, padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], H)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], H)
        self.LayerNorm = nn.LayerNorm(H, eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, ids, type_ids):
        T = ids.shape[1]
        pos = torch.arange(T, device=ids.device)[None, :]
        x = self.word_embeddings(ids) + self.token_type_embeddings(type_ids)
        x = x + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)
        self.dropout = nn.Dropout(c["attention_probs_dropout_prob"])

    def split(self, x):  # (B, T, H) -> (B, A, T, d)
        B, T, H = x.shape
        return x.view(B, T, self.heads, H // self.heads).permute(0, 2, 1, 3)

    def forward(self, x, add_mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        ctx = attention_core(q, k, v, add_mask, self.dropout)
        B, A, T, d = ctx.shape
        return ctx.permute(0, 2, 1, 3).reshape(B, T, A * d)


class DenseResidualNorm(nn.Module):
    """dense, dropout, + residual, LayerNorm (HF's BertSelfOutput / BertOutput)."""

    def __init__(self, c, n_in):
        super().__init__()
        H = c["hidden_size"]
        self.dense = nn.Linear(n_in, H)
        self.LayerNorm = nn.LayerNorm(H, eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseResidualNorm(c, c["hidden_size"])

    def forward(self, x, add_mask):
        return self.output(self.self(x, add_mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.form = GELU_FORMS[c["hidden_act"]]

    def forward(self, x):
        return gelu(self.dense(x), self.form)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseResidualNorm(c, c["intermediate_size"])

    def forward(self, x, add_mask):
        a = self.attention(x, add_mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, x, add_mask):
        for layer in self.layer:
            x = layer(x, add_mask)
        return x


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        self.pooler = Pooler(c)

    def forward(self, ids, type_ids, attention_mask):
        x = self.embeddings(ids, type_ids)
        h = self.encoder(x, additive_mask(attention_mask, x.dtype))
        return h, self.pooler(h)


class PredictionTransform(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.dense = nn.Linear(H, H)
        self.LayerNorm = nn.LayerNorm(H, eps=c["layer_norm_eps"])
        self.form = GELU_FORMS[c["hidden_act"]]

    def forward(self, h):
        return self.LayerNorm(gelu(self.dense(h), self.form))


class Predictions(nn.Module):
    """MLM prediction head; its decoder weight is the word embedding matrix."""

    def __init__(self, c):
        super().__init__()
        self.transform = PredictionTransform(c)
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))

    def forward(self, h, word_embeddings):
        return F.linear(self.transform(h), word_embeddings, self.bias)


class MLMHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = Predictions(c)


class BertModelRef(nn.Module):
    """BERT with an optional classification/regression head and MLM head."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.bert = Bert(cfg)
        self.num_labels = cfg.get("num_labels", 0)
        if self.num_labels > 0:
            self.dropout = nn.Dropout(cfg["hidden_dropout_prob"])
            self.classifier = nn.Linear(cfg["hidden_size"], self.num_labels)
        if cfg.get("with_mlm"):
            self.cls = MLMHead(cfg)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None, mlm_labels=None):
        """Returns a dict: last_hidden_state (B, T, H), pooled_output (B, H), and
        where they apply logits (B, num_labels), mlm_logits (B, T, V),
        cls_loss, mlm_loss and loss (their sum; mean reductions)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        h, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        out = {"last_hidden_state": h, "pooled_output": pooled}
        losses = []
        if self.num_labels > 0:
            logits = self.classifier(self.dropout(pooled))
            out["logits"] = logits
            if labels is not None:
                if self.num_labels == 1:
                    out["cls_loss"] = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
                else:
                    out["cls_loss"] = F.cross_entropy(logits, labels.long().view(-1))
                losses.append(out["cls_loss"])
        if hasattr(self, "cls"):
            mlm_logits = self.cls.predictions(h, self.bert.embeddings.word_embeddings.weight)
            out["mlm_logits"] = mlm_logits
            if mlm_labels is not None:
                out["mlm_loss"] = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]),
                                                  mlm_labels.long().reshape(-1), ignore_index=-100)
                losses.append(out["mlm_loss"])
        if losses:
            out["loss"] = sum(losses[1:], losses[0])
        return out


# ---------------------------------------------------------------------------
# Initialisation, loading, saving.


@torch.no_grad()
def hf_init_(model, seed):
    """HuggingFace's _init_weights: Linear and Embedding weights N(0, initializer_range),
    the padding row zero, biases zero, LayerNorm weight 1. Deterministic in seed
    (torch's generator; not finemask's Philox streams)."""
    std = model.config["initializer_range"]
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * std)
            mod.bias.zero_()
        elif isinstance(mod, nn.Embedding):
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * std)
            if mod.padding_idx is not None:
                mod.weight[mod.padding_idx].zero_()
        elif isinstance(mod, nn.LayerNorm):
            mod.weight.fill_(1.0)
            mod.bias.zero_()
        elif isinstance(mod, Predictions):
            mod.bias.zero_()
    return model


def init_random(config, seed=0):
    """A model of config (raw or normalised dict) with HF-style random weights."""
    cfg = normalize_config(config)
    return hf_init_(BertModelRef(cfg), seed)


# Checkpoint tensors that carry nothing this model needs.
_IGNORED = ("bert.embeddings.position_ids", "cls.seq_relationship.weight", "cls.seq_relationship.bias")


def hf_name(name):
    """Checkpoint tensor name -> this model's (HF's current) name: LayerNorm
    gamma/beta -> weight/bias, a missing "bert." prefix added, the decoder bias
    alias folded onto cls.predictions.bias."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[-2] == "LayerNorm":
        parts[-1] = {"gamma": "weight", "beta": "bias"}.get(parts[-1], parts[-1])
    name = ".".join(parts)
    if name.split(".")[0] in ("embeddings", "encoder", "pooler"):
        name = "bert." + name
    if name == "cls.predictions.decoder.bias":
        name = "cls.predictions.bias"
    return name


def load_state(model, tensors, where="checkpoint", strict_unused=False):
    """Copy {checkpoint name: array} into model. Returns (missing, unused) name lists.

    Shape mismatches are errors. Missing pooler/classifier/MLM tensors keep their
    current (random) values and are reported in missing; a missing encoder or
    embedding tensor is an error. The tied decoder weight is checked against the
    word embeddings, not loaded."""
    params = dict(model.named_parameters())
    seen, unused = set(), []
    decoder = None
    for raw, arr in tensors.items():
        name = hf_name(raw)
        if name == "cls.predictions.decoder.weight":
            decoder = (raw, arr)
            continue
        if name in _IGNORED or name not in params:
            unused.append(raw)
            continue
        if name in seen:
            raise ValueError(f"{where}: tensor '{raw}' maps to '{name}', which another tensor already set")
        p = params[name]
        if tuple(arr.shape) != tuple(p.shape):
            raise ValueError(f"{where}: tensor '{raw}': expected shape {list(p.shape)}, found {list(arr.shape)}")
        with torch.no_grad():
            p.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(p.dtype))
        seen.add(name)
    missing = [n for n in params if n not in seen]
    required = [n for n in missing if n.startswith(("bert.embeddings.", "bert.encoder."))]
    if required:
        raise ValueError(f"{where}: no tensor for '{required[0]}' ({len(required)} required tensor(s) missing)")
    if decoder is not None:
        raw, arr = decoder
        if "bert.embeddings.word_embeddings.weight" in seen:
            we = params["bert.embeddings.word_embeddings.weight"].detach().cpu().numpy()
            if arr.shape != we.shape or not np.array_equal(arr.astype(we.dtype), we):
                print(f"torch_bert: warning: {where}: '{raw}' differs from the word embeddings; "
                      "the decoder is tied, so it is ignored", file=sys.stderr)
    if strict_unused and unused:
        raise ValueError(f"{where}: unexpected tensor '{unused[0]}'")
    return missing, unused


def load_model_dir(path, num_labels=None, with_mlm=None, seed=0, dtype=torch.float32, verbose=False):
    """Load DIR/config.json + DIR/model.safetensors. Returns (config dict, model).

    num_labels: default from config.json, else the classifier's shape in the
    checkpoint. with_mlm: default True when the checkpoint has cls.predictions.*.
    Tensors the checkpoint lacks (pooler, classifier, MLM head) get an HF-style
    random init from seed. The model is in eval mode (no dropout)."""
    cpath, wpath = os.path.join(path, "config.json"), os.path.join(path, "model.safetensors")
    with open(cpath) as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{cpath}: not valid JSON ({e})") from None
    cfg = normalize_config(raw, cpath)
    tensors = st_io.read(wpath)
    names = {hf_name(k) for k in tensors}
    if num_labels is not None:
        cfg["num_labels"] = num_labels
    elif cfg["num_labels"] == 0 and "classifier.weight" in names:
        cfg["num_labels"] = int(tensors[[k for k in tensors if hf_name(k) == "classifier.weight"][0]].shape[0])
    cfg["with_mlm"] = (any(n.startswith("cls.predictions.") for n in names) if with_mlm is None else bool(with_mlm))
    model = hf_init_(BertModelRef(cfg), seed)
    missing, unused = load_state(model, tensors, wpath)
    if verbose:
        if missing:
            print(f"torch_bert: {wpath}: randomly initialised: {', '.join(missing)}", file=sys.stderr)
        if unused:
            print(f"torch_bert: {wpath}: unused: {', '.join(unused)}", file=sys.stderr)
    return cfg, model.to(dtype).eval()


def hf_state(model, dtype=np.float32):
    """{HF name: numpy array} of the model's parameters."""
    return {n: p.detach().cpu().numpy().astype(dtype) for n, p in model.named_parameters()}


def save_model_dir(model, path, metadata=None):
    """Write DIR/config.json and DIR/model.safetensors (float32, HF names)."""
    os.makedirs(path, exist_ok=True)
    cfg = model.config
    out = {k: v for k, v in cfg.items() if k not in ("num_labels", "with_mlm")}
    out["model_type"] = "bert"
    archs = ["BertForSequenceClassification"] if cfg["num_labels"] else []
    if cfg.get("with_mlm"):
        archs.append("BertForMaskedLM")
    out["architectures"] = archs or ["BertModel"]
    if cfg["num_labels"]:
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(cfg["num_labels"])}
        out["label2id"] = {f"LABEL_{i}": i for i in range(cfg["num_labels"])}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")
    st_io.write(os.path.join(path, "model.safetensors"), hf_state(model), metadata={"format": "pt", **(metadata or {})})


def save_grads(model, path, dtype=np.float32):
    """Write every parameter's .grad (zeros where none) under HF names."""
    grads = {}
    for n, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        grads[n] = g.detach().cpu().numpy().astype(dtype)
    st_io.write(path, grads)


# ---------------------------------------------------------------------------
# Self-check.


def selftest(verbose=True):
    """Check the built-ins the model uses against the spelled-out formulas, the
    whole layer against a hand computation, and a save/load round trip with old
    names. A few seconds."""
    torch.manual_seed(0)
    x = torch.randn(4, 7, 16, dtype=torch.float64) * 3
    for form in ("none", "tanh"):
        d = (gelu(x, form) - gelu_ref(x, form)).abs().max().item()
        assert d < 1e-12, f"gelu {form}: {d}"
        d32 = (gelu(x.float(), form).double() - gelu_ref(x, form)).abs().max().item()
        assert d32 < 1e-5, f"gelu {form} float32: {d32}"
    w, b = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    d = (F.layer_norm(x, (16,), w, b, 1e-12) - layer_norm_ref(x, w, b, 1e-12)).abs().max().item()
    assert d < 1e-12, f"layer_norm: {d}"

    B, A, T, dh = 2, 3, 5, 4
    q, k, v = (torch.randn(B, A, T, dh, dtype=torch.float64) for _ in range(3))
    mask = torch.ones(B, T)
    mask[1, 3:] = 0
    am = additive_mask(mask, torch.float64)
    got = attention_core(q, k, v, am, nn.Identity())
    want = attention_ref(q, k, v, am)
    d = (got - want).abs().max().item()
    assert d < 1e-12, f"attention: {d}"
    # Padded keys must get exactly zero weight.
    v2 = v.clone()
    v2[1, :, 3:] = 1e6
    assert torch.allclose(attention_core(q, k, v2, am, nn.Identity())[1], got[1], atol=1e-9), "mask leaks"

    # One encoder layer by hand, from its own parameters.
    cfg = normalize_config(dict(hidden_size=8, num_attention_heads=2, intermediate_size=12, num_hidden_layers=1,
                                vocab_size=11, max_position_embeddings=6, hidden_act="gelu_new", num_labels=3,
                                with_mlm=True))
    model = init_random(cfg, 3).double().eval()
    with torch.no_grad():
        for p in model.parameters():  # make biases and LayerNorms non-trivial
            p.add_(torch.randn_like(p) * 0.1)
    L = model.bert.encoder.layer[0]
    h = torch.randn(2, 5, 8, dtype=torch.float64)
    am = additive_mask(mask, torch.float64)

    def lin(m, t):
        return t @ m.weight.T + m.bias

    def heads(t):
        return t.view(2, 5, 2, 4).permute(0, 2, 1, 3)

    sa = L.attention.self
    ctx = attention_ref(heads(lin(sa.query, h)), heads(lin(sa.key, h)), heads(lin(sa.value, h)), am)
    ctx = ctx.permute(0, 2, 1, 3).reshape(2, 5, 8)
    ao = L.attention.output
    a = layer_norm_ref(lin(ao.dense, ctx) + h, ao.LayerNorm.weight, ao.LayerNorm.bias, 1e-12)
    i = gelu_ref(lin(L.intermediate.dense, a), "tanh")
    oo = L.output
    want = layer_norm_ref(lin(oo.dense, i) + a, oo.LayerNorm.weight, oo.LayerNorm.bias, 1e-12)
    with torch.no_grad():
        d = (L(h, am) - want).abs().max().item()
    assert d < 1e-12, f"encoder layer: {d}"

    # Whole model: losses and a gradient flow; padding row gets no gradient.
    ids = torch.tensor([[2, 5, 7, 0, 0], [3, 0, 9, 10, 4]])
    types = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
    mlm = torch.full((2, 5), -100)
    mlm[0, 1], mlm[1, 3] = 6, 1
    out = model(ids, types, mask.long(), labels=torch.tensor([1, 2]), mlm_labels=mlm)
    out["loss"].backward()
    emb = model.bert.embeddings
    e = emb.word_embeddings.weight[ids] + emb.token_type_embeddings.weight[types] + emb.position_embeddings.weight[:5]
    e = layer_norm_ref(e, emb.LayerNorm.weight, emb.LayerNorm.bias, 1e-12)
    pooled = torch.tanh(lin(model.bert.pooler.dense, L(e, am)[:, 0]))
    want = F.cross_entropy(lin(model.classifier, pooled), torch.tensor([1, 2]))
    assert abs(out["cls_loss"].item() - want.item()) < 1e-12, "classifier loss"

    # Round trip through safetensors with old-style names and no "bert." prefix.
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        save_model_dir(model, d)
        st = st_io.read(os.path.join(d, "model.safetensors"))
        old = {}
        for n, arr in st.items():
            n2 = n[len("bert."):] if n.startswith("bert.") else n
            n2 = n2.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            old[n2] = arr
        old["cls.predictions.decoder.weight"] = st["bert.embeddings.word_embeddings.weight"]
        st_io.write(os.path.join(d, "model.safetensors"), old)
        cfg2, m2 = load_model_dir(d)
        assert cfg2["num_labels"] == 3 and cfg2["with_mlm"] and cfg2["hidden_act"] == "gelu_new"
        for (n1, p1), (n2, p2) in zip(model.named_parameters(), m2.named_parameters()):
            assert n1 == n2 and torch.equal(p1.float(), p2), n1
    # Regression head.
    mr = init_random(dict(cfg, num_labels=1, with_mlm=False), 1).double()
    o = mr(ids, types, mask.long(), labels=torch.tensor([0.5, -1.0], dtype=torch.float64))
    assert abs(o["loss"].item() - F.mse_loss(o["logits"].view(-1), torch.tensor([0.5, -1.0]).double()).item()) < 1e-15
    # Without the tied decoder, the padding row of the word embeddings gets no gradient.
    o["loss"].backward()
    g = mr.bert.embeddings.word_embeddings.weight.grad
    assert g[0].abs().max() == 0 and g[2].abs().max() > 0, "padding row gradient"
    if verbose:
        print("torch_bert self-test: ok (gelu erf/tanh, layer_norm, attention, encoder layer, heads, load/save)")


# ---------------------------------------------------------------------------
# Command line.


def _cmd_run(a):
    dtype = torch.float64 if a.double else torch.float32
    cfg, model = load_model_dir(a.model, seed=a.seed, dtype=dtype, verbose=True)
    inp = st_io.read(a.inputs)
    if "input_ids" not in inp:
        raise ValueError(f"{a.inputs}: no tensor named 'input_ids'")
    ids = torch.from_numpy(inp["input_ids"]).long()
    if ids.dim() != 2:
        raise ValueError(f"{a.inputs}: input_ids must be (B, T), found shape {list(ids.shape)}")

    def opt(name, kind):
        if name not in inp:
            return None
        t = torch.from_numpy(inp[name])
        return t.to(dtype) if kind == "f" else t.long()

    types, mask = opt("token_type_ids", "i"), opt("attention_mask", "i")
    labels = opt("labels", "f" if cfg["num_labels"] == 1 else "i")
    mlm = opt("mlm_labels", "i")
    if a.train:
        torch.manual_seed(a.seed)
        model.train()
    out = model(ids, types, mask, labels=labels, mlm_labels=mlm)
    if "loss" in out and a.grads:
        out["loss"].backward()
        save_grads(model, a.grads, np.float64 if a.double else np.float32)
    res = {k: v.detach() for k, v in out.items()}
    st_io.write(a.out, res)
    summary = {k: round(v.item(), 7) for k, v in res.items() if v.dim() == 0}
    print(json.dumps({"out": a.out, **summary}))


def _cmd_init(a):
    cfg = preset_config(a.config, a.num_labels, a.mlm)
    model = init_random(cfg, a.seed)
    save_model_dir(model, a.out)
    print(f"torch_bert: wrote {a.out} ({a.config}, {sum(p.numel() for p in model.parameters())} parameters)")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Plain-PyTorch BERT reference for finemask.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest", help="check the building blocks against explicit formulas")
    r = sub.add_parser("run", help="forward (and backward) on inputs from a safetensors file")
    r.add_argument("--model", required=True)
    r.add_argument("--inputs", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--grads", help="also write parameter gradients of the loss here")
    r.add_argument("--double", action="store_true", help="compute in float64")
    r.add_argument("--train", action="store_true", help="dropout on (torch's RNG, seeded)")
    r.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("init", help="write a randomly initialised model directory")
    i.add_argument("--config", default="tiny", choices=sorted(PRESETS))
    i.add_argument("--seed", type=int, default=1)
    i.add_argument("--out", required=True)
    i.add_argument("--num-labels", type=int, default=2)
    i.add_argument("--mlm", action="store_true")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "selftest":
            selftest()
        elif a.cmd == "run":
            _cmd_run(a)
        else:
            _cmd_init(a)
    except (OSError, ValueError, st_io.SafetensorsError) as e:
        print(f"torch_bert: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
