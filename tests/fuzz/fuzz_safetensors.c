/* fuzz_safetensors.c: libFuzzer target for the safetensors reader. Every
 * input is parsed from memory; one that parses has each float tensor
 * converted and is then checked against a small BERT config as a model
 * directory load would check it (names, dtypes, shapes, the task head),
 * both with that config as is and as fm_modeldir_resolve adjusts it.
 *
 *   CC=clang cmake -S . -B build-fuzz -DFM_FUZZ=ON && make -C build-fuzz fuzz_safetensors
 *   build-fuzz/fuzz_safetensors -dict=tests/fuzz/safetensors.dict tests/fuzz/corpus/safetensors */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fm.h"
#include "modeldir.h"
#include "params.h"
#include "safetensors.h"

/* A BERT small enough that a fuzzer can build a complete file for it:
 * V=16, H=4, A=2, I=8, L=1, P=8, TV=2, two labels. */
static void micro_config(fm_config *c) {
    fm_config_default(c);
    c->vocab_size = 16;
    c->hidden_size = 4;
    c->num_attention_heads = 2;
    c->intermediate_size = 8;
    c->num_hidden_layers = 1;
    c->max_position_embeddings = 8;
    c->type_vocab_size = 2;
    c->num_labels = 2;
}

static fm_config cfg;
static fm_layout lay;
static float *params;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!params) {
        fm_verbosity = 0;
        micro_config(&cfg);
        fm_layout_build(&lay, &cfg);
        params = fm_xalloc_floats(lay.numel);
    }
    fm_st_file f;
    if (fm_st_parse(&f, data, size, "fuzz.safetensors") != FM_OK) return 0;

    /* Every tensor's bytes lie inside the input, so numel is bounded by size. */
    for (int i = 0; i < f.n; i++) {
        const fm_st_tensor *t = &f.t[i];
        if (!fm_st_dtype_is_float(t->dtype)) {
            if (t->numel && fm_st_to_float(&f, t, NULL) != FM_ERR) abort(); /* must refuse, without writing */
            continue;
        }
        float *out = malloc(t->numel * sizeof(float) + 1);
        fm_st_to_float(&f, t, out);
        free(out);
    }
    (void)fm_st_find(&f, "classifier.weight");
    (void)fm_st_meta_get(&f, "format");

    fm_load_info info;
    fm_load_tensors(&f, &cfg, &lay, params, &info);

    fm_config c = cfg;
    c.num_labels = 0;
    int skip_head;
    if (fm_modeldir_resolve("fuzz/config.json", &c, NULL, &f, NULL, &skip_head) == FM_OK) {
        fm_layout l2;
        fm_layout_build(&l2, &c);
        float *p2 = fm_xalloc_floats(l2.numel);
        fm_load_tensors(&f, &c, &l2, p2, &info);
        fm_free_aligned(p2);
        fm_layout_free(&l2);
    }
    fm_st_close(&f);
    return 0;
}
