/* csv.c: RFC 4180 quoting of CSV fields (see csv.h). */
#include "csv.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

fm_csv fm_csv_start(FILE *f) { return (fm_csv){f, 0}; }

void fm_csv_str(fm_csv *r, const char *s) {
    if (r->fields++) fputc(',', r->f);
    if (!s) return;
    if (!s[strcspn(s, ",\"\r\n")]) {
        fputs(s, r->f);
        return;
    }
    fputc('"', r->f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', r->f);
        fputc(*p, r->f);
    }
    fputc('"', r->f);
}

void fm_csv_fmt(fm_csv *r, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof buf) {
        fm_csv_str(r, buf);
        return;
    }
    /* longer than the buffer: format again into one of the right size */
    char *big = fm_xmalloc(n > 0 ? (size_t)n + 1 : 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    fm_csv_str(r, big);
    free(big);
}

void fm_csv_end(fm_csv *r) {
    fputc('\n', r->f);
    r->fields = 0;
}

void fm_csv_row(FILE *f, int n, const char *const *fields) {
    fm_csv r = fm_csv_start(f);
    for (int i = 0; i < n; i++) fm_csv_str(&r, fields[i]);
    fm_csv_end(&r);
}
