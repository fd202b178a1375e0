/* testutil.h: helpers shared by the cmocka tests. */
#ifndef FM_TESTUTIL_H
#define FM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

#endif
