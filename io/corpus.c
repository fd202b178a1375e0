/* corpus.c: plain-text corpora (see corpus.h). */
#include "corpus.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"

int fm_corpus_read(fm_corpus *c, const char *const *paths, int npaths) {
    memset(c, 0, sizeof *c);
    c->bufs = fm_xcalloc((size_t)(npaths > 0 ? npaths : 1), sizeof(char *));
    int64_t cap = 0;
    for (int f = 0; f < npaths; f++) {
        size_t len;
        if (fm_read_file(paths[f], &c->bufs[f], &len) != FM_OK) {
            fm_corpus_free(c);
            return FM_ERR;
        }
        c->nfiles = f + 1;
        if (memchr(c->bufs[f], 0, len)) {
            fm_fail("%s: a NUL byte at offset %zu; expected UTF-8 text", paths[f],
                    (size_t)((char *)memchr(c->bufs[f], 0, len) - c->bufs[f]));
            fm_corpus_free(c);
            return FM_ERR;
        }
        char *p = c->bufs[f], *end = p + len;
        int32_t lineno = 0;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            char *e = nl ? nl : end;
            lineno++;
            *e = 0;
            if (e > p && e[-1] == '\r') e[-1] = 0;
            int blank = 1;
            for (char *q = p; *q; q++)
                if (*q != ' ' && *q != '\t' && *q != '\r') {
                    blank = 0;
                    break;
                }
            if (!blank) {
                if (c->n == cap) {
                    cap = cap ? 2 * cap : 1024;
                    c->line = fm_xrealloc(c->line, sizeof(char *) * (size_t)cap);
                    c->lineno = fm_xrealloc(c->lineno, sizeof(int32_t) * (size_t)cap);
                    c->file = fm_xrealloc(c->file, sizeof(int32_t) * (size_t)cap);
                }
                c->line[c->n] = p;
                c->lineno[c->n] = lineno;
                c->file[c->n] = f;
                c->n++;
            }
            p = e + 1;
        }
    }
    if (c->n == 0) {
        fm_fail("%s%s: no text (every line is empty)", npaths > 0 ? paths[0] : "corpus",
                npaths > 1 ? " and the other corpus files" : "");
        fm_corpus_free(c);
        return FM_ERR;
    }
    return FM_OK;
}

void fm_corpus_free(fm_corpus *c) {
    for (int f = 0; f < c->nfiles; f++) free(c->bufs[f]);
    free(c->bufs);
    free(c->line);
    free(c->lineno);
    free(c->file);
    memset(c, 0, sizeof *c);
}
