/* fm.h: what every part of finemask shares: return codes, the last-error
 * buffer, logging, allocation and timing. */
#ifndef FM_H
#define FM_H

#include <stddef.h>
#include <stdint.h>

#define FM_OK 0
#define FM_ERR (-1)

#if defined(__GNUC__)
#define FM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FM_PRINTF(a, b)
#endif

/* FM_HOT marks the element-wise loops of a training step. A portable build
 * (x86-64-v2, see CMakeLists.txt) compiles each of them three times, for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the baseline, and the loader
 * picks the one the CPU runs. On a given CPU the same clone always runs, so a
 * run's bits do not change between runs; they may differ from a CPU of
 * another level, as BLIS's kernels do. Empty where the build already targets
 * AVX2 or more (FINEMASK_NATIVE), and with clang (whose clones leave OpenMP
 * regions at the baseline). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
#define FM_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FM_HOT
#endif

/* Record a user-facing error message (file, line or tensor, what was expected,
 * what was found). Returns FM_ERR so callers can write `return fm_fail(...)`. */
int fm_fail(const char *fmt, ...) FM_PRINTF(1, 2);
/* Prefix the recorded message with more context ("model.safetensors: " + msg). */
int fm_fail_prefix(const char *fmt, ...) FM_PRINTF(1, 2);
/* The last recorded message of this thread ("" when none). */
const char *fm_last_error(void);
void fm_clear_error(void);

/* Verbosity: 0 quiet, 1 normal (default), 2 debug. */
extern int fm_verbosity;
/* Log a line to stderr, prefixed "finemask: ", when verbosity >= 1. */
void fm_log(const char *fmt, ...) FM_PRINTF(1, 2);
void fm_debug(const char *fmt, ...) FM_PRINTF(1, 2);
/* Text put after "finemask: " on every log line from now on ("[team 1] "
 * while a sweep's team runs a job, so that the teams' lines can be told
 * apart); NULL or "" for none. fm_log_prefix gives the current one. */
void fm_log_set_prefix(const char *prefix);
const char *fm_log_prefix(void);
/* Print "finemask: error: <msg>" to stderr. */
void fm_print_error(const char *msg);

/* Allocate or die: for sizes the program itself decides. */
void *fm_xmalloc(size_t n);
void *fm_xcalloc(size_t n, size_t size);
void *fm_xrealloc(void *p, size_t n);
char *fm_xstrdup(const char *s);
/* 64-byte aligned, zeroed allocation or die; free with fm_free_aligned. */
float *fm_xalloc_floats(size_t n);
void fm_free_aligned(void *p);
/* n floats of which only [begin, end) is memory (zeroed): the rest is
 * reserved address space without access, so that touching it faults
 * (SIGSEGV) instead of quietly growing the process. The pages that hold
 * begin and end - 1 are whole pages of memory, so up to a page's worth of
 * floats beside the range is accessible too. Offsets stay those of the
 * whole array. Free with fm_free_floats_part(p, n). */
float *fm_xalloc_floats_part(size_t n, size_t begin, size_t end);
void fm_free_floats_part(float *p, size_t n);
/* Try to allocate: NULL and a recorded error on failure, for sizes a user
 * input decides (a header length, a tensor size). */
void *fm_try_malloc(size_t n);

/* Monotonic seconds. */
double fm_now(void);
/* Peak resident set size of this process, in bytes. */
size_t fm_peak_rss(void);

#endif
