/* testutil.h: helpers shared by the cmocka tests. */
#ifndef FM_TESTUTIL_H
#define FM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model.h"

/* A fresh empty directory under $TMPDIR (removed by tu_rmtree). */
char *tu_mkdtemp(void);
/* rm -rf path. */
void tu_rmtree(const char *path);
/* Write n bytes to path; returns 0 on success. */
int tu_write_file(const char *path, const void *data, size_t n);
/* ../shared/data (or $FINEMASK_DATA), or NULL when absent. */
const char *tu_data_dir(void);
/* Assert that `s` contains `needle`, with a readable failure message. */
#define tu_assert_contains(s, needle) tu_assert_contains_(s, needle, __FILE__, __LINE__)
void tu_assert_contains_(const char *s, const char *needle, const char *file, int line);

/* The tiny problem of the training tests: TU_B = 3 examples of TU_T = 7
 * tokens (example 0 full, example 1 with 2 padded positions, example 2 with
 * 4), both token types, labels {1, 0, 1}. The arrays are static storage. */
enum { TU_B = 3, TU_T = 7 };
fm_batch tu_tiny_batch(void);
/* A tiny BERT for them: vocabulary 50, H 16, 2 heads, I 32, 16 positions,
 * `layers` encoder layers, 2 labels, no dropout; BERT's initialisation with
 * std 0.2 (so the layers do real work) and LayerNorm gains away from 1. */
void tu_tiny_model(fm_model *m, int layers);

#endif
