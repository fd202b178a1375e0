/* fuzz_glue_tsv.c: bytes as a GLUE TSV file, read by every task's reader,
 * both as a labelled (train/dev) file and as a test file. A reader must
 * either reject the bytes with a message or return examples that hold
 * together: texts present, labels in range, lines increasing. */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fm.h"
#include "glue.h"

static void check(const fm_glue_task *t, fm_glue_split split, const uint8_t *data, size_t size) {
    fm_glue_set set;
    if (fm_glue_parse(&set, t, split, "fuzz.tsv", (const char *)data, size) != FM_OK) {
        assert(fm_last_error()[0] != '\0');
        assert(set.n == 0 && set.ex == NULL && set.buf == NULL);
        return;
    }
    const fm_glue_layout *L = fm_glue_split_layout(t, split);
    assert(set.n > 0);
    int last = 0;
    for (size_t i = 0; i < set.n; i++) {
        const fm_glue_example *e = &set.ex[i];
        assert(e->text_a != NULL);
        (void)strlen(e->text_a);
        assert((e->text_b != NULL) == (L->col_b >= 0));
        if (e->text_b) (void)strlen(e->text_b);
        assert(e->line > last);
        last = e->line;
        if (split == FM_GLUE_TEST || split == FM_GLUE_TEST_MISMATCHED) {
            assert(e->label == -1 && isnan(e->score) && e->id != NULL);
        } else if (t->is_regression) {
            assert(e->label == -1 && isfinite(e->score));
        } else {
            assert(e->label >= 0 && e->label < t->num_labels);
        }
    }
    fm_glue_set_free(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    const fm_glue_task *tasks = fm_glue_tasks(&n);
    for (size_t i = 0; i < n; i++) {
        check(&tasks[i], FM_GLUE_DEV, data, size);
        check(&tasks[i], FM_GLUE_TEST, data, size);
    }
    return 0;
}
