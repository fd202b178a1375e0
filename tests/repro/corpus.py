#!/usr/bin/env python3
"""corpus.py: English text for pre-training, built from what is installed.

Writes one sentence or short paragraph per line (UTF-8) to OUT and a summary
of each source to stderr. Sources, each used only when present:

  glue     the sentences of the training sets of SST-2, CoLA, MRPC, STS-B and
           RTE under DATA/glue (never the dev sets: no dev text is seen in
           pre-training)
  wordnet  WordNet 3.0 glosses and their example sentences
           (/usr/share/wordnet/data.*, Debian package wordnet-base;
           WordNet licence: use, copy and distribute for any purpose)
  gcide    the GNU Collaborative International Dictionary of English's
           definitions (/usr/share/dictd/gcide.dict.dz, package dict-gcide;
           GPL-3+), markup and etymologies removed
  pydoc    the paragraphs of Python's HTML documentation
           (/usr/share/doc/python3.*/html, package python3.11-doc; PSF licence)

Lines are normalised for white space; empty lines, lines shorter than four
words and exact repeats are dropped. The lines are then put in a random order
drawn from a fixed seed, so that every part of the corpus (and the held-out
rows `finemask pretrain` keeps at its end) mixes every source; the same
packages give the same corpus.

usage: corpus.py DATA OUT
"""
import glob
import gzip
import html.parser
import os
import random
import re
import sys

WS = re.compile(r"\s+")


def clean(s):
    return WS.sub(" ", s).strip()


def glue(data):
    g = os.path.join(data, "glue")
    # (task, header line?, text columns) as GLUE lays the training files out
    layout = [("SST-2", True, [0]), ("CoLA", False, [3]), ("MRPC", True, [3, 4]),
              ("STS-B", True, [7, 8]), ("RTE", True, [1, 2])]
    for task, header, cols in layout:
        path = os.path.join(g, task, "train.tsv")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8-sig") as f:
            for i, line in enumerate(f):
                if header and i == 0:
                    continue
                parts = line.rstrip("\n").split("\t")
                for c in cols:
                    if c < len(parts):
                        yield parts[c]


def wordnet():
    for pos in ("noun", "verb", "adj", "adv"):
        path = "/usr/share/wordnet/data." + pos
        if not os.path.exists(path):
            continue
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # the licence header
                gloss = line.split("|", 1)[1]
                # "definition; "example one"; "example two""
                for part in re.split(r';\s*', gloss):
                    part = part.strip().strip('"').strip()
                    if part:
                        yield part[0].upper() + part[1:] + ("" if part[-1] in ".!?" else ".")


def gcide():
    path = "/usr/share/dictd/gcide.dict.dz"
    if not os.path.exists(path):
        return
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        para = []
        for line in f:
            if line.strip():
                para.append(line.strip())
                continue
            if para:
                yield from gcide_entry(para)
            para = []
        if para:
            yield from gcide_entry(para)


BRACKETS = re.compile(r"\[[^\]]*\]")          # [1913 Webster], [L. ...], [R.]
PRON = re.compile(r"\\[^\\]*\\")              # \Ab*di"ca`tion\
SENSE = re.compile(r"^\(?\d+\.\)?\s*|^\([a-z]\)\s*")
CITE = re.compile(r"--\s*[A-Z][\w.]*(\s+[A-Z][\w.]*)*\.?")


def gcide_entry(lines):
    text = " ".join(lines)
    if PRON.search(text):  # the head line: word, pronunciation, part of speech
        text = PRON.split(text, 1)[1]
        # drop the part of speech up to the first full stop
        text = text.split(".", 1)[1] if "." in text[:40] else text
    text = CITE.sub("", BRACKETS.sub("", text))
    text = SENSE.sub("", clean(text))
    if text and not text.startswith(("Syn.", "Note:")) and text[0].isalpha():
        yield text


class Paragraphs(html.parser.HTMLParser):
    """The text of every <p> outside code blocks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.skip = 0
        self.buf = []
        self.out = []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.depth += 1
            self.buf = []
        elif tag in ("pre", "script", "style"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == "p" and self.depth:
            self.depth -= 1
            self.out.append("".join(self.buf))
        elif tag in ("pre", "script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if self.depth and not self.skip:
            self.buf.append(data)


def pydoc():
    roots = sorted(glob.glob("/usr/share/doc/python3.*/html"))
    if not roots:
        return
    for path in sorted(glob.glob(os.path.join(roots[-1], "**", "*.html"), recursive=True)):
        if "/_" in path[len(roots[-1]):]:
            continue  # _static, _sources, ...
        p = Paragraphs()
        with open(path, encoding="utf-8", errors="replace") as f:
            p.feed(f.read())
        yield from p.out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    data, out = sys.argv[1], sys.argv[2]
    seen = set()
    lines = []
    total = 0
    for name, src in (("glue", glue(data)), ("wordnet", wordnet()), ("gcide", gcide()), ("pydoc", pydoc())):
        n = words = 0
        for s in src:
            s = clean(s)
            if len(s.split()) < 4 or s in seen:
                continue
            seen.add(s)
            lines.append(s)
            n += 1
            words += len(s.split())
        print(f"corpus: {name}: {n} lines, {words} words", file=sys.stderr)
        total += words
    random.Random(1).shuffle(lines)
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        for s in lines:
            f.write(s + "\n")
    os.replace(out + ".tmp", out)
    print(f"corpus: {len(lines)} lines, {total} words in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
