#!/usr/bin/env bash
# tokenizer_hf.sh: `finemask tokenize` must give exactly the ids of
# HuggingFace's own tokenizer (the npm package @huggingface/tokenizers, the
# version pinned in tests/tools/hf/package-lock.json) for the tokenizer.json
# HuggingFace writes for bert-base-uncased, built here from the shared
# vocab.txt: on every line of every shared GLUE dev file (pairs as the task
# has them), on seeded random multi-script text (tests/tools/hf_tokenizer.mjs
# random), uncased and cased, and on one line per Unicode code point. 0
# differences are required.
#
#   bash tests/e2e/tokenizer_hf.sh FINEMASK_BINARY SOURCE_DIR
#
# The package is installed (npm ci) once into BUILD_DIR/hf-tokenizers (or
# $FINEMASK_HF_CACHE) and reused. Exit 77 (skip, with the reason) when node or
# npm is absent, the package cannot be installed, the shared data or python3
# is absent, or node's Unicode is not the one src/unidata.c was generated for.
# FINEMASK_HF_LINES (default 100000) and FINEMASK_HF_SEED (default 16) choose
# the random text.
set -u
fm=${1:?usage: tokenizer_hf.sh FINEMASK_BINARY SOURCE_DIR}
src=${2:?usage: tokenizer_hf.sh FINEMASK_BINARY SOURCE_DIR}
data=${FINEMASK_DATA:-$src/../shared/data}
vocab=$data/vocab/bert-base-uncased-vocab.txt
lines=${FINEMASK_HF_LINES:-100000}
seed=${FINEMASK_HF_SEED:-16}
skip() {
    echo "tokenizer_hf: SKIP: $*"
    exit 77
}
[ -f "$vocab" ] && [ -d "$data/glue" ] || skip "no shared data (vocab and glue/) under $data"
command -v node > /dev/null || skip "node not found (HuggingFace's tokenizer runs on Node.js)"
command -v npm > /dev/null || skip "npm not found (it installs @huggingface/tokenizers)"
command -v python3 > /dev/null || skip "python3 not found (it extracts the GLUE texts)"
fm=$(cd "$(dirname "$fm")" && pwd)/$(basename "$fm")
build=$(dirname "$fm")

# Node's Unicode must be the one src/unidata.c holds: HuggingFace's
# JavaScript tokenizer takes every character property from the engine.
want=$(sed -n 's/^const char fm_unidata_unicode_version\[\] = "\(.*\)";/\1/p' "$src/src/unidata.c")
have=$(node -p process.versions.unicode)
[ "$want" = "$have" ] || skip "node $(node --version) has Unicode $have; finemask's tables (src/unidata.c) are Unicode $want, so the two cannot agree on characters new in between (regenerate with tests/tools/gen_unidata.mjs to compare with this node)"

# HuggingFace's tokenizer, installed once per build directory.
cache=${FINEMASK_HF_CACHE:-$build/hf-tokenizers}
mkdir -p "$cache"
pkg=$cache/node_modules/@huggingface/tokenizers/package.json
pinned=$(node -p "require('$src/tests/tools/hf/package-lock.json').packages['node_modules/@huggingface/tokenizers'].version")
if [ ! -f "$pkg" ] || [ "$(node -p "require('$pkg').version")" != "$pinned" ] ||
    ! cmp -s "$src/tests/tools/hf/package-lock.json" "$cache/package-lock.json"; then
    cp "$src/tests/tools/hf/package.json" "$src/tests/tools/hf/package-lock.json" "$cache/"
    t0=$SECONDS
    (cd "$cache" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) ||
        skip "npm ci of @huggingface/tokenizers@$pinned failed in $cache (no registry?)"
    echo "installed @huggingface/tokenizers $pinned in $((SECONDS - t0)) s"
fi
cp "$src/tests/tools/hf_tokenizer.mjs" "$cache/"
hf() { node "$cache/hf_tokenizer.mjs" "$@"; }
echo "HuggingFace: @huggingface/tokenizers $(node -p "require('$pkg').version"), node $(node --version), ICU $(node -p process.versions.icu), Unicode $have"

passed=0 failed=0
# The generated Unicode table must be what this engine and utf8proc give.
if [ -x "$build/unidata_dump" ]; then
    if node "$src/tests/tools/gen_unidata.mjs" "$build/unidata_dump" --check "$src/src/unidata.c"; then
        passed=$((passed + 1))
    else
        echo "FAIL src/unidata.c does not match this engine and utf8proc"
        failed=$((failed + 1))
    fi
else
    echo "note: $build/unidata_dump not built; src/unidata.c not checked"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
hf tokenizer-json "$vocab" > "$tmp/uncased.json" && hf tokenizer-json "$vocab" --cased > "$tmp/cased.json" ||
    { echo "FAIL could not write tokenizer.json"; exit 1; }
mkdir "$tmp/model" && cp "$tmp/uncased.json" "$tmp/model/tokenizer.json"

for d in "$data"/glue/*/; do
    task=$(basename "$d")
    for f in "$d"dev*.tsv; do
        [ -f "$f" ] && python3 "$src/tests/tools/ref_tokenizer.py" glue-texts "$task" "$f"
    done
done > "$tmp/glue" || { echo "FAIL could not extract the GLUE texts"; exit 1; }
t0=$SECONDS
hf random "$lines" "$seed" "$src/src/unidata.c" "$vocab" > "$tmp/random" || { echo "FAIL random text"; exit 1; }
head -n $((lines / 5)) "$tmp/random" > "$tmp/random5"
hf every-code-point > "$tmp/every" || { echo "FAIL every-code-point text"; exit 1; }

total=0
# check NAME INPUT TOKENIZER_JSON [finemask tokenize options...]
check() {
    local name=$1 input=$2 json=$3
    shift 3
    local n
    n=$(wc -l < "$input")
    if [ ! -f "$input.$(basename "$json").hf" ]; then
        hf encode "$json" < "$input" > "$input.$(basename "$json").hf" || {
            echo "FAIL $name: HuggingFace's tokenizer failed"
            failed=$((failed + 1))
            return
        }
    fi
    if ! "$fm" tokenize "$@" < "$input" > "$tmp/fm.out"; then
        echo "FAIL $name: finemask tokenize exited non-zero"
        failed=$((failed + 1))
        return
    fi
    if hf compare "$input" "$input.$(basename "$json").hf" "$tmp/fm.out" 6 > "$tmp/cmp"; then
        printf 'ok   %-44s %7d lines, %9d ids identical\n' "$name" "$n" "$(wc -w < "$tmp/fm.out")"
        passed=$((passed + 1))
        total=$((total + n))
    else
        echo "FAIL $name:"
        cat "$tmp/cmp"
        failed=$((failed + 1))
    fi
}

check "GLUE dev, tokenizer.json" "$tmp/glue" "$tmp/uncased.json" --tokenizer "$tmp/uncased.json"
check "GLUE dev, model dir with tokenizer.json" "$tmp/glue" "$tmp/uncased.json" --model "$tmp/model"
check "GLUE dev, vocab.txt" "$tmp/glue" "$tmp/uncased.json" --vocab "$vocab"
check "GLUE dev, cased tokenizer.json" "$tmp/glue" "$tmp/cased.json" --tokenizer "$tmp/cased.json"
check "random (seed $seed), tokenizer.json" "$tmp/random" "$tmp/uncased.json" --tokenizer "$tmp/uncased.json"
check "random, vocab.txt" "$tmp/random" "$tmp/uncased.json" --vocab "$vocab"
check "random (first fifth), cased tokenizer.json" "$tmp/random5" "$tmp/cased.json" --tokenizer "$tmp/cased.json"
check "random (first fifth), vocab.txt --cased" "$tmp/random5" "$tmp/cased.json" --vocab "$vocab" --cased
check "every code point, tokenizer.json" "$tmp/every" "$tmp/uncased.json" --tokenizer "$tmp/uncased.json"

echo "tokenizer_hf: $total lines compared ($(wc -l < "$tmp/glue") GLUE dev, $lines random with seed $seed, every code point) in $((SECONDS - t0)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
