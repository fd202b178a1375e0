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
