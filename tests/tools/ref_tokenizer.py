#!/usr/bin/env python3
"""ref_tokenizer.py: an independent Python implementation of BERT's reference
tokenizer (HuggingFace BertTokenizer, the Python one, with its defaults), to
check finemask's C tokenizer against. It uses only the standard library:
Unicode data from Python's own unicodedata, not utf8proc.

Commands (texts are read as raw bytes and split on b"\\n" only, so \\r and
U+2028 inside a line stay inside it, as in `finemask tokenize`):

  tokenize --vocab FILE [--cased] [--max-seq-length N]
        stdin lines ("a" or "a<TAB>b") -> space-separated input ids, exactly
        what `finemask tokenize` prints
  glue-texts TASK FILE
        the texts of every example of a GLUE TSV file, one "a" or "a<TAB>b"
        line each, chosen the way HuggingFace's GLUE processors choose them
  random-text N SEED
        N lines of random text mixing the characters that exercise every
        stage of the tokenizer (accents, CJK, controls, punctuation, ...)
"""
import csv
import random
import re
import sys
import unicodedata

SPECIAL_TOKENS = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_TOKENS) + ")")

# Code-point ranges the reference treats as CJK ideographs.
CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def is_cjk(ch):
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def is_space(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_dropped(ch):
    """NUL, U+FFFD and every 'other' category (C*), except tab/newline/cr."""
    if ch in "\t\n\r":
        return False
    return ord(ch) in (0, 0xFFFD) or unicodedata.category(ch)[0] == "C"


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch)[0] == "P"


class RefTokenizer:
    def __init__(self, vocab_path, lower=True, max_word_chars=100):
        self.vocab = {}
        with open(vocab_path, "rb") as f:
            for i, raw in enumerate(f.read().split(b"\n")):
                tok = raw.decode("utf-8").rstrip("\r")
                if tok:
                    self.vocab.setdefault(tok, i)
        self.lower = lower
        self.max_word_chars = max_word_chars
        self.unk = self.vocab["[UNK]"]

    def basic(self, text):
        """The basic (pre-WordPiece) words of text holding no special token."""
        out = []
        for ch in text:
            if is_dropped(ch):
                continue
            if is_space(ch):
                out.append(" ")
            elif is_cjk(ch):
                out.extend((" ", ch, " "))
            else:
                out.append(ch)
        text = unicodedata.normalize("NFC", "".join(out))
        words = []
        for word in text.split():
            if word in SPECIAL_TOKENS:
                words.append(word)
                continue
            if self.lower:
                word = unicodedata.normalize("NFD", word.lower())
                word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            piece = ""
            for ch in word:
                if is_punct(ch):
                    words.extend(p for p in (piece, ch) if p)
                    piece = ""
                else:
                    piece += ch
            if piece:
                words.append(piece)
        return [w for w in " ".join(words).split()]

    def wordpiece(self, word):
        if len(word) > self.max_word_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                cand = ("##" if start else "") + word[start:end]
                if cand in self.vocab:
                    ids.append(self.vocab[cand])
                    start = end
                    break
            else:
                return [self.unk]
        return ids

    def tokenize(self, text):
        ids = []
        for i, seg in enumerate(SPECIAL_RE.split(text)):
            if i % 2:  # a special token matched by the split
                ids.append(self.vocab.get(seg, self.unk))
                continue
            if self.lower:  # character by character, as HF lower-cases
                seg = "".join(c.lower() for c in seg)
            for word in self.basic(seg):
                if word in SPECIAL_TOKENS:
                    ids.append(self.vocab.get(word, self.unk))
                else:
                    ids.extend(self.wordpiece(word))
        return ids

    def encode(self, a, b=None, max_len=0):
        ta = self.tokenize(a)
        tb = self.tokenize(b) if b is not None else []
        if max_len > 0:
            budget = max_len - (3 if b is not None else 2)
            while len(ta) + len(tb) > budget:
                if len(ta) > len(tb):
                    ta.pop()
                else:
                    tb.pop()
        cls, sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        out = [cls] + ta + [sep]
        if b is not None:
            out += tb + [sep]
        return out


def cmd_tokenize(args):
    vocab, lower, max_len = None, True, 0
    i = 0
    while i < len(args):
        if args[i] == "--vocab":
            vocab = args[i + 1]
            i += 2
        elif args[i] == "--cased":
            lower = False
            i += 1
        elif args[i] == "--max-seq-length":
            max_len = int(args[i + 1])
            i += 2
        else:
            sys.exit("ref_tokenizer: unknown option " + args[i])
    tok = RefTokenizer(vocab, lower)
    data = sys.stdin.buffer.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for raw in lines:
        parts = raw.decode("utf-8").split("\t")
        ids = tok.encode(parts[0], parts[1] if len(parts) > 1 else None, max_len)
        out.append(" ".join(map(str, ids)))
    sys.stdout.write("".join(s + "\n" for s in out))


# Per task: (has header, text columns for train/dev, text columns for test).
GLUE_COLUMNS = {
    "CoLA": (False, (3,), (1,)),
    "SST-2": (True, (0,), (1,)),
    "MRPC": (True, (3, 4), (3, 4)),
    "STS-B": (True, (7, 8), (7, 8)),
    "QQP": (True, (3, 4), (1, 2)),
    "MNLI": (True, (8, 9), (8, 9)),
    "QNLI": (True, (1, 2), (1, 2)),
    "RTE": (True, (1, 2), (1, 2)),
    "WNLI": (True, (1, 2), (1, 2)),
}


def cmd_glue_texts(args):
    task, path = args
    header, cols, test_cols = GLUE_COLUMNS[task]
    is_test = path.rsplit("/", 1)[-1].startswith("test")
    if is_test:
        header, cols = True, test_cols
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if header:
        rows = rows[1:]
    for row in rows:
        try:
            texts = [row[c] for c in cols]
        except IndexError:  # QQP's processor skips short rows
            continue
        sys.stdout.write("\t".join(texts) + "\n")


def cmd_random_text(args):
    n, seed = int(args[0]), int(args[1])
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        " " * 8 + "\r\x0b\x0c\x1c\x1f\x00\x7f\x85\xa0\u2000\u3000\u2028\u2029\u200b\u200d\ufeff\ufffd",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»‘’“”„†‡•…‰′″‹›‼⁇、。「」『』【】〜・",
        "éèêëÉÈÊËàâäÀÂÄçÇñÑöÖüÜßøØåÅæÆœŒıİσςΣΑΒΓαβγΩωάέήίόύώΐ",
        "e\u0301a\u0300o\u0308n\u0303A\u030a=\u0338<\u0338\u0345\u0307\u20dd\u0f71\u0f72",
        "中文字符測試日本語漢字한국어ひらがなカタカナ\uf900\ufa6d\U00020000\U0002a6d6\u3400",
        "😀👍🏽👨\u200d👩\u200d👧🇫🇷❤️✓★☆♥€£¥¢₹$",
        "ＡＢＣａｂｃ１２３！？ｶﾀｶﾅ",
        "абвгдАБВГДЁёЖжЙй",
        "مرحبا بالعالم עברית नमस्ते தமிழ் ไทย",
        "\ue000\uf8ff\U000f0000\u0378\uffff\U000e0001",
    ]
    words = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[Sep]", "CLS", "[CLS", "the", "The",
             "unaffable", "naïve", "Café", "ΟΔΟΣ", "İstanbul", "x" * 120, "a" * 99, "ab" * 60]
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 12)):
            r = rng.random()
            if r < 0.15:
                parts.append(rng.choice(words))
            elif r < 0.25:
                cp = rng.randint(0x80, 0x2FFFF)
                ch = chr(cp)
                if unicodedata.category(ch) != "Cn" and not 0xD800 <= cp < 0xE000:
                    parts.append(ch)
            else:
                pool = rng.choice(pools)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        line = "".join(rng.choice(["", " "]) + p for p in parts)
        a = line.replace("\t", " ").replace("\n", " ")
        if rng.random() < 0.3:
            a += "\t" + rng.choice(words) + " " + a[::-1]
        sys.stdout.buffer.write(a.encode("utf-8") + b"\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tokenize":
        cmd_tokenize(args)
    elif cmd == "glue-texts":
        cmd_glue_texts(args)
    elif cmd == "random-text":
        cmd_random_text(args)
    else:
        sys.exit("ref_tokenizer: unknown command " + cmd)


if __name__ == "__main__":
    main()
