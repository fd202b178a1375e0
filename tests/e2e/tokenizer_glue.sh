#!/usr/bin/env bash
# tokenizer_glue.sh: `finemask tokenize --reference python` must give exactly
# the ids of the independent Python reference (tests/tools/ref_tokenizer.py,
# HuggingFace's Python BertTokenizer) on every text of every shared GLUE dev
# file (as pairs, untruncated and truncated to 128, uncased and cased), and on
# random text that exercises every tokenizer stage. The default reference,
# HuggingFace's tokenizers, is checked by tokenizer_hf.sh.
#
#   bash tests/e2e/tokenizer_glue.sh FINEMASK_BINARY SOURCE_DIR
#
# Exit 77 (skip) when the shared data or python3 is absent. Set
# FINEMASK_TOKENIZER_TRAIN=1 to check the train files too.
set -u
fm=${1:?usage: tokenizer_glue.sh FINEMASK_BINARY SOURCE_DIR}
src=${2:?usage: tokenizer_glue.sh FINEMASK_BINARY SOURCE_DIR}
data=${FINEMASK_DATA:-$src/../shared/data}
vocab=$data/vocab/bert-base-uncased-vocab.txt
if [ ! -f "$vocab" ] || [ ! -d "$data/glue" ]; then
    echo "tokenizer_glue: SKIP: no shared data (vocab and glue/) under $data"
    exit 77
fi
if ! command -v python3 > /dev/null; then
    echo "tokenizer_glue: SKIP: python3 not found"
    exit 77
fi
ref="$src/tests/tools/ref_tokenizer.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0 lines=0 ids=0
# check NAME INPUT [tokenize options...]: both tokenizers on INPUT, identical output required.
check() {
    local name=$1 input=$2
    shift 2
    if ! "$fm" tokenize --reference python --vocab "$vocab" "$@" < "$input" > "$tmp/c.out"; then
        echo "FAIL $name: finemask tokenize exited non-zero"
        failed=$((failed + 1))
        return
    fi
    python3 "$ref" tokenize --vocab "$vocab" "$@" < "$input" > "$tmp/py.out"
    local n k
    n=$(wc -l < "$input")
    k=$(wc -w < "$tmp/py.out")
    if cmp -s "$tmp/c.out" "$tmp/py.out"; then
        printf 'ok   %-40s %7d lines %9d ids identical\n' "$name" "$n" "$k"
        passed=$((passed + 1))
        lines=$((lines + n))
        ids=$((ids + k))
    else
        local bad
        bad=$(diff <(cat "$tmp/c.out") <(cat "$tmp/py.out") | grep -c '^<')
        printf 'FAIL %-40s %d of %d lines differ; first differences (< finemask, > reference):\n' "$name" "$bad" "$n"
        diff "$tmp/c.out" "$tmp/py.out" | head -8
        diff <(nl -ba "$tmp/c.out") <(nl -ba "$tmp/py.out") | grep '^<' | head -3 | while read -r _ num _; do
            printf '  input line %s: ' "$num"
            sed -n "${num}p" "$input" | head -c 300
            echo
        done
        failed=$((failed + 1))
    fi
}

files=()
for d in "$data"/glue/*/; do
    task=$(basename "$d")
    for f in "$d"dev*.tsv; do [ -f "$f" ] && files+=("$task:$f"); done
    if [ "${FINEMASK_TOKENIZER_TRAIN:-0}" = 1 ] && [ -f "${d}train.tsv" ]; then files+=("$task:${d}train.tsv"); fi
done
for tf in "${files[@]}"; do
    task=${tf%%:*} f=${tf#*:}
    name="$task/$(basename "$f")"
    python3 "$ref" glue-texts "$task" "$f" > "$tmp/texts" || { echo "FAIL $name: could not extract texts"; failed=$((failed + 1)); continue; }
    check "$name" "$tmp/texts"
    check "$name --max-seq-length 128" "$tmp/texts" --max-seq-length 128
    check "$name --cased" "$tmp/texts" --cased
done

python3 "$ref" random-text 4000 1 > "$tmp/random"
check "random text" "$tmp/random"
check "random text --cased" "$tmp/random" --cased
check "random text --max-seq-length 16" "$tmp/random" --max-seq-length 16

echo "tokenizer_glue: $lines lines, $ids ids identical to the reference"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
