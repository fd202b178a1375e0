/* util.c: errors, logging, allocation and timing (see fm.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include "fm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <time.h>

int fm_verbosity = 1;

static _Thread_local char fm_errbuf[2048];

int fm_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fm_errbuf, sizeof fm_errbuf, fmt, ap);
    va_end(ap);
    return FM_ERR;
}

int fm_fail_prefix(const char *fmt, ...) {
    char prefix[1024], old[sizeof fm_errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, fm_errbuf, sizeof old);
    size_t lp = strnlen(prefix, sizeof fm_errbuf - 1);
    memcpy(fm_errbuf, prefix, lp);
    size_t lo = strnlen(old, sizeof fm_errbuf - 1 - lp);
    memcpy(fm_errbuf + lp, old, lo);
    fm_errbuf[lp + lo] = '\0';
    return FM_ERR;
}

const char *fm_last_error(void) { return fm_errbuf; }
void fm_clear_error(void) { fm_errbuf[0] = '\0'; }

static char log_prefix[64];

void fm_log_set_prefix(const char *prefix) { snprintf(log_prefix, sizeof log_prefix, "%s", prefix ? prefix : ""); }
const char *fm_log_prefix(void) { return log_prefix; }

static void vlog(const char *fmt, va_list ap) {
    char line[4096];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "finemask: %s%s\n", log_prefix, line);
}

void fm_log(const char *fmt, ...) {
    if (fm_verbosity < 1) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void fm_debug(const char *fmt, ...) {
    if (fm_verbosity < 2) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void fm_print_error(const char *msg) {
    fprintf(stderr, "finemask: error: %s\n", msg && *msg ? msg : "unknown error");
}

static void die_oom(size_t n) {
    fprintf(stderr, "finemask: error: out of memory allocating %zu bytes\n", n);
    exit(2);
}

void *fm_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die_oom(n);
    return p;
}

void *fm_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die_oom(n * size);
    return p;
}

void *fm_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_oom(n);
    return q;
}

char *fm_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = fm_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

float *fm_xalloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) die_oom(bytes);
    memset(p, 0, bytes);
    return p;
}

void fm_free_aligned(void *p) { free(p); }

float *fm_xalloc_floats_part(size_t n, size_t begin, size_t end) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = ((n ? n : 1) * sizeof(float) + page - 1) / page * page;
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die_oom(bytes);
    if (end > begin) {
        size_t b = begin * sizeof(float) / page * page;
        size_t e = (end * sizeof(float) + page - 1) / page * page;
        if (e > bytes) e = bytes;
        /* anonymous pages read as zero, as fm_xalloc_floats's do */
        if (mprotect((char *)p + b, e - b, PROT_READ | PROT_WRITE) != 0) die_oom(e - b);
    }
    return p;
}

void fm_free_floats_part(float *p, size_t n) {
    if (!p) return;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    munmap(p, ((n ? n : 1) * sizeof(float) + page - 1) / page * page);
}

void *fm_try_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fm_fail("out of memory allocating %zu bytes", n);
    return p;
}

double fm_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

size_t fm_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024;
}
