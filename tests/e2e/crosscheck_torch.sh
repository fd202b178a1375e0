#!/usr/bin/env bash
# crosscheck_torch.sh: finemask's logits (predict --split dev) and first-batch
# gradients (train --dump-grads) on HuggingFace-format checkpoints must agree
# with an independent PyTorch BERT computed in float64 (tests/tools/torch_bert.py),
# every logit and every gradient tensor, to float32 precision. The models are
# small (L=2 H=64 A=2 I=128, gelu and gelu_new; 2-label, 3-label MNLI and STS-B
# regression heads) with the real uncased vocabulary, on real GLUE files.
# The tolerances and the figures measured are in tests/tools/crosscheck.py.
#
#   bash tests/e2e/crosscheck_torch.sh FINEMASK_BINARY SOURCE_DIR
#
# Exit 77 (skip) when the shared data (SOURCE_DIR/../shared/data or
# $FINEMASK_DATA) or a python3 with torch and numpy is absent; $FINEMASK_PYTHON
# names the interpreter to use. About 10 s.
set -u
fm=${1:?usage: crosscheck_torch.sh FINEMASK_BINARY SOURCE_DIR}
src=${2:?usage: crosscheck_torch.sh FINEMASK_BINARY SOURCE_DIR}
data=${FINEMASK_DATA:-$src/../shared/data}
if [ ! -f "$data/vocab/bert-base-uncased-vocab.txt" ] || [ ! -d "$data/glue" ]; then
    echo "crosscheck_torch: SKIP: no shared data (vocab/ and glue/) under $data"
    exit 77
fi
py=
for cand in ${FINEMASK_PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$cand" > /dev/null 2>&1 && "$cand" -c 'import torch, numpy' > /dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "crosscheck_torch: SKIP: no python3 with torch and numpy (set FINEMASK_PYTHON)"
    exit 77
fi
exec "$py" "$src/tests/tools/crosscheck.py" --finemask "$fm" --data "$data"
