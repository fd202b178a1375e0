/* testutil.c: helpers shared by the cmocka tests (see testutil.h). */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_mkdtemp(void) {
    const char *tmp = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/finemask-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char *d = mkdtemp(buf);
    assert_non_null(d);
    return strdup(d);
}

void tu_rmtree(const char *path) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

int tu_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

const char *tu_data_dir(void) {
    static char buf[4096];
    const char *env = getenv("FINEMASK_DATA");
    if (env && *env) {
        snprintf(buf, sizeof buf, "%s", env);
    } else {
        snprintf(buf, sizeof buf, "%s/../shared/data", FM_SOURCE_DIR);
    }
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return buf;
}

void tu_assert_contains_(const char *s, const char *needle, const char *file, int line) {
    if (!s || !strstr(s, needle)) {
        print_error("%s:%d: expected \"%s\" to contain \"%s\"\n", file, line, s ? s : "(null)", needle);
        _fail(file, line);
    }
}

static const int32_t tiny_ids[TU_B * TU_T] = {2, 17, 5, 33, 9, 41, 3, 2, 8, 8, 49, 3, 0, 0, 2, 26, 3, 0, 0, 0, 0};
static const int32_t tiny_tids[TU_B * TU_T] = {0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0};
static const float tiny_amask[TU_B * TU_T] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0};
static const int32_t tiny_labels[TU_B] = {1, 0, 1};

fm_batch tu_tiny_batch(void) {
    fm_batch b = {.B = TU_B, .T = TU_T, .ids = tiny_ids, .type_ids = tiny_tids, .attn_mask = tiny_amask,
                  .labels = tiny_labels, .example0 = 0};
    return b;
}

void tu_tiny_model(fm_model *m, int layers) {
    fm_config c;
    fm_config_default(&c);
    c.vocab_size = 50;
    c.hidden_size = 16;
    c.num_hidden_layers = layers;
    c.num_attention_heads = 2;
    c.intermediate_size = 32;
    c.max_position_embeddings = 16;
    c.type_vocab_size = 2;
    c.num_labels = 2;
    c.hidden_dropout_prob = 0;
    c.attention_probs_dropout_prob = 0;
    c.initializer_range = 0.2f;
    fm_model_alloc(m, &c);
    fm_model_init_weights(m, 7);
    for (int i = 0; i < m->lay.n; i++)
        if (m->lay.t[i].flags & FM_T_LN)
            for (size_t j = 0; j < m->lay.t[i].numel; j++)
                m->params[m->lay.t[i].offset + j] += 0.1f * (float)((int)(j % 5) - 2);
}
