/* vocab.c: reading BERT's vocab.txt (see vocab.h). */
#include "vocab.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "fileio.h"
#include "fm.h"

int fm_vocab_parse(fm_vocab *v, const char *name, const char *data, size_t len) {
    fm_vocab_init(v);
    if (len == 0) return fm_fail("%s: empty file (expected one token per line)", name);
    size_t pos = 0, line = 0;
    while (pos < len) {
        line++;
        const char *s = data + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        if (n > 0 && s[n - 1] == '\r') n--;
        if (n == 0) {
            fm_vocab_free(v);
            return fm_fail("%s:%zu: empty line (expected a token: the id of a token is its line number)", name, line);
        }
        for (size_t i = 0; i < n;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
            if (k < 0 || cp == 0) {
                fm_vocab_free(v);
                return fm_fail("%s:%zu: invalid UTF-8 at byte %zu of the line (expected UTF-8 text)", name, line,
                               i + 1);
            }
            i += (size_t)k;
        }
        if (fm_vocab_add(v, s, n) < 0) {
            int32_t first = fm_vocab_find(v, s, n);
            fm_vocab_free(v);
            return fm_fail("%s:%zu: duplicate token '%.*s' (first on line %d; expected each token once)", name, line,
                           (int)(n > 100 ? 100 : n), s, (int)first + 1);
        }
    }
    return FM_OK;
}

int fm_vocab_load(fm_vocab *v, const char *path) {
    char *data;
    size_t len;
    fm_vocab_init(v);
    if (fm_read_file(path, &data, &len) != FM_OK) return FM_ERR;
    int rc = fm_vocab_parse(v, path, data, len);
    free(data);
    return rc;
}

int fm_tokenizer_load(fm_tokenizer *t, const char *vocab_path, const fm_tokenizer_opts *opts) {
    fm_vocab v;
    memset(t, 0, sizeof *t);
    if (fm_vocab_load(&v, vocab_path) != FM_OK) return FM_ERR;
    if (fm_tokenizer_init(t, &v, opts) != FM_OK) {
        fm_tokenizer_free(t);
        return fm_fail_prefix("%s: ", vocab_path);
    }
    return FM_OK;
}

/* Lines in a vocab.txt (a last line without a newline counts). */
int fm_vocab_count(const char *path, int *n) {
    char *data;
    size_t len;
    if (fm_read_file(path, &data, &len) != FM_OK) return FM_ERR;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    if (len && data[len - 1] != '\n') lines++;
    free(data);
    if (lines == 0) return fm_fail("%s: empty vocabulary", path);
    if (lines > (1u << 24)) return fm_fail("%s: %zu lines, more than a vocabulary can have here", path, lines);
    *n = (int)lines;
    return FM_OK;
}
