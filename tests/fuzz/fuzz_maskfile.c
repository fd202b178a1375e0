/* fuzz_maskfile.c: libFuzzer target for the mask file reader. Every input is
 * parsed from memory as a mask file; one that passes is checked against a
 * small BERT layout (fm_maskfile_check_model), and its statistics and its
 * overlap with itself are computed: every zero must be shared.
 *
 *   CC=clang cmake -S . -B build-fuzz -DFM_FUZZ=ON && make -C build-fuzz fuzz_maskfile
 *   build-fuzz/fuzz_maskfile -dict=tests/fuzz/safetensors.dict tests/fuzz/corpus/maskfile */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "analysis.h"
#include "config.h"
#include "fm.h"
#include "maskfile.h"
#include "params.h"

static fm_layout lay;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) {
        /* V=16, H=4, A=2, I=8, L=1, P=8, TV=2, two labels */
        fm_config c;
        fm_config_default(&c);
        c.vocab_size = 16;
        c.hidden_size = 4;
        c.num_attention_heads = 2;
        c.intermediate_size = 8;
        c.num_hidden_layers = 1;
        c.max_position_embeddings = 8;
        c.type_vocab_size = 2;
        c.num_labels = 2;
        fm_layout_build(&lay, &c);
        ready = 1;
    }
    fm_mask m;
    fm_maskfile_meta meta;
    float *hw, *hb;
    int nl;
    if (fm_maskfile_parse(data, size, "fuzz.safetensors", &m, &meta, &hw, &hb, &nl) != FM_OK) return 0;
    (void)fm_maskfile_check_model(&meta, meta.model_fingerprint, &lay, &m);
    fm_mask_stats s;
    fm_mask_stats_compute(&s, &m);
    fm_overlap o;
    if (fm_mask_overlap(&o, &m, &m) != FM_OK || o.all.common != s.all.zeros) abort();
    fm_overlap_free(&o);
    fm_mask_stats_free(&s);
    free(hw);
    free(hb);
    fm_mask_free(&m);
    fm_maskfile_meta_free(&meta);
    return 0;
}
