/* runfiles.c: metrics.json, log.jsonl and submission TSVs (see runfiles.h). */
#define _GNU_SOURCE
#include "runfiles.h"

#include <sys/stat.h>
#include <unistd.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"

int fm_json_write(const char *path, const json_t *obj) {
    char *s = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    if (!s) return fm_fail("%s: cannot serialise JSON", path);
    size_t n = strlen(s);
    char *t = fm_xmalloc(n + 2);
    memcpy(t, s, n);
    t[n] = '\n';
    free(s);
    int rc = fm_write_file_atomic(path, t, n + 1);
    free(t);
    return rc;
}

int fm_json_read(const char *path, json_t **obj) {
    json_error_t e;
    *obj = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!*obj) return fm_fail("%s:%d:%d: %s", path, e.line, e.column, e.text);
    if (!json_is_object(*obj)) {
        json_decref(*obj);
        *obj = NULL;
        return fm_fail("%s: expected a JSON object", path);
    }
    return FM_OK;
}

int fm_jsonl_open(fm_jsonl *l, const char *path) {
    l->fp = fopen(path, "w");
    if (!l->fp) return fm_fail("%s: cannot create: %s", path, strerror(errno));
    l->path = fm_xstrdup(path);
    return FM_OK;
}

int fm_jsonl_append(fm_jsonl *l, const json_t *obj) {
    if (!l->fp) return FM_OK;
    char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    if (!s) return fm_fail("%s: cannot serialise JSON", l->path);
    int ok = fputs(s, (FILE *)l->fp) >= 0 && fputc('\n', (FILE *)l->fp) != EOF && fflush((FILE *)l->fp) == 0;
    free(s);
    return ok ? FM_OK : fm_fail("%s: write failed: %s", l->path, strerror(errno));
}

int fm_jsonl_resume(fm_jsonl *l, const char *path, long long bytes) {
    struct stat st;
    if (stat(path, &st) != 0) return fm_fail("%s: cannot resume the log: %s", path, strerror(errno));
    if ((long long)st.st_size < bytes)
        return fm_fail("%s: expected at least %lld bytes (the log at the checkpoint), found %lld", path, bytes,
                       (long long)st.st_size);
    if (truncate(path, (off_t)bytes) != 0) return fm_fail("%s: cannot truncate: %s", path, strerror(errno));
    l->fp = fopen(path, "a");
    if (!l->fp) return fm_fail("%s: cannot open: %s", path, strerror(errno));
    fseek((FILE *)l->fp, 0, SEEK_END);
    l->path = fm_xstrdup(path);
    return FM_OK;
}

int fm_jsonl_sync(fm_jsonl *l, long long *bytes) {
    FILE *f = (FILE *)l->fp;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) return fm_fail("%s: sync failed: %s", l->path, strerror(errno));
    long pos = ftell(f);
    if (pos < 0) return fm_fail("%s: ftell failed: %s", l->path, strerror(errno));
    *bytes = pos;
    return FM_OK;
}

int fm_jsonl_close(fm_jsonl *l) {
    int rc = FM_OK;
    if (l->fp && fclose((FILE *)l->fp) != 0) rc = fm_fail("%s: close failed: %s", l->path, strerror(errno));
    free(l->path);
    l->fp = NULL;
    l->path = NULL;
    return rc;
}

/* A growable text buffer for the TSV writers. */
typedef struct {
    char *s;
    size_t n, cap;
} buf_t;

static void buf_printf(buf_t *b, const char *fmt, ...) FM_PRINTF(2, 3);
static void buf_printf(buf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(k > 0 ? k : 64) + 1;
        b->s = fm_xrealloc(b->s, b->cap);
    }
}

static void buf_init(buf_t *b) {
    b->cap = 4096;
    b->n = 0;
    b->s = fm_xmalloc(b->cap);
}

int fm_write_submission(const char *path, const char *const *ids, const char *const *labels, const float *scores,
                        size_t n) {
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "index\tprediction\n");
    for (size_t i = 0; i < n; i++) {
        if (ids)
            buf_printf(&b, "%s\t", ids[i]);
        else
            buf_printf(&b, "%zu\t", i);
        if (labels)
            buf_printf(&b, "%s\n", labels[i]);
        else
            buf_printf(&b, "%.3f\n", (double)scores[i]);
    }
    int rc = fm_write_file_atomic(path, b.s, b.n);
    free(b.s);
    return rc;
}

int fm_write_logits(const char *path, const char *const *ids, const char *const *names, const float *values,
                    size_t n, int k) {
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "index");
    for (int j = 0; j < k; j++) buf_printf(&b, "\t%s", names[j]);
    buf_printf(&b, "\n");
    for (size_t i = 0; i < n; i++) {
        if (ids)
            buf_printf(&b, "%s", ids[i]);
        else
            buf_printf(&b, "%zu", i);
        for (int j = 0; j < k; j++) buf_printf(&b, "\t%.9g", (double)values[i * (size_t)k + (size_t)j]);
        buf_printf(&b, "\n");
    }
    int rc = fm_write_file_atomic(path, b.s, b.n);
    free(b.s);
    return rc;
}

static int skipped(const char *key, const char *const *skip) {
    for (; skip && *skip; skip++)
        if (!strcmp(key, *skip)) return 1;
    return 0;
}

/* 1 when a and b are one file's names (both resolve to the same path). */
static int same_file(const json_t *a, const json_t *b) {
    if (!json_is_string(a) || !json_is_string(b)) return 0;
    char *ra = realpath(json_string_value(a), NULL), *rb = realpath(json_string_value(b), NULL);
    const int same = ra && rb && !strcmp(ra, rb);
    free(ra);
    free(rb);
    return same;
}

/* 1 when the values a and b of a path key name the same files. */
static int same_files(const json_t *a, const json_t *b) {
    if (!json_is_array(a) || !json_is_array(b)) return same_file(a, b);
    if (json_array_size(a) != json_array_size(b)) return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_equal(json_array_get(a, i), json_array_get(b, i)) &&
            !same_file(json_array_get(a, i), json_array_get(b, i)))
            return 0;
    return 1;
}

int fm_options_compare(const char *path, const json_t *saved, const json_t *cur, const char *const *path_keys,
                       const char *const *skip, fm_opts_case c) {
    const char *left_out[80];
    int n = 0;
    json_t *b = json_deep_copy(cur);
    for (int i = 0; path_keys && path_keys[i]; i++) {
        json_t *va = json_object_get(saved, path_keys[i]), *vb = json_object_get(b, path_keys[i]);
        if (c == FM_OPTS_FINISHED) {
            if (n < 79) left_out[n++] = path_keys[i];
        } else if (va && vb && !json_equal(va, vb) && same_files(va, vb)) {
            json_object_set(b, path_keys[i], va); /* the saved spelling where both name the same files */
        }
    }
    for (int i = 0; skip && skip[i] && n < 79; i++) left_out[n++] = skip[i];
    left_out[n] = NULL;
    const char *key = fm_json_first_difference(saved, b, left_out);
    int rc = FM_OK;
    if (key) {
        json_t *va = json_object_get(saved, key), *vb = json_object_get(b, key);
        /* numbers to 10 significant digits, unless that shows two equal values */
        const size_t ten = JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10);
        char *sa = va ? json_dumps(va, ten) : NULL, *sb = vb ? json_dumps(vb, ten) : NULL;
        if (sa && sb && !strcmp(sa, sb)) {
            free(sa);
            free(sb);
            sa = json_dumps(va, JSON_ENCODE_ANY | JSON_COMPACT);
            sb = json_dumps(vb, JSON_ENCODE_ANY | JSON_COMPACT);
        }
        if (c == FM_OPTS_FINISHED)
            rc = fm_fail("%s: option %s differs: the job finished with %s, the job file now says %s; remove the "
                         "directory to run the job again, or give run another --out",
                         path, key, sa ? sa : "(none)", sb ? sb : "(none)");
        else
            rc = fm_fail("%s: option %s differs: the state was written with %s, this run has %s; resume with the "
                         "same options (or start over with --force instead of --resume)",
                         path, key, sa ? sa : "(none)", sb ? sb : "(none)");
        free(sa);
        free(sb);
    }
    json_decref(b);
    return rc;
}

int fm_options_agree(const char *path, const char *saved, const char *cur, const char *const *path_keys,
                     const char *const *skip) {
    json_error_t err;
    json_t *a = json_loads(saved ? saved : "", 0, &err), *b = json_loads(cur, 0, &err);
    int rc = json_is_object(a) && json_is_object(b)
                 ? fm_options_compare(path, a, b, path_keys, skip, FM_OPTS_RESUME)
                 : fm_fail("%s: metadata \"options\": expected a JSON object, found \"%s\"", path, saved ? saved : "");
    json_decref(a);
    json_decref(b);
    return rc;
}

const char *fm_json_first_difference(const json_t *a, const json_t *b, const char *const *skip) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)b, key, v) {
        json_t *u = json_object_get(a, key);
        if (!skipped(key, skip) && !(u && json_equal(u, v))) return key;
    }
    json_object_foreach((json_t *)a, key, v) {
        if (!skipped(key, skip) && !json_object_get(b, key)) return key;
    }
    return NULL;
}
