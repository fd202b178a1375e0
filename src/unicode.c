/* unicode.c: character properties from utf8proc and the generated table of
 * unidata.c (see unicode.h). */
#include "unicode.h"


#include "unidata.h"

/* The table entry of cp, or NULL. */
static const fm_unidata_entry *delta(int32_t cp) {
    size_t lo = 0, hi = fm_unidata_ndelta;
    if (hi == 0 || cp < fm_unidata_delta[0].cp) return NULL;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (fm_unidata_delta[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < fm_unidata_ndelta && fm_unidata_delta[lo].cp == cp ? &fm_unidata_delta[lo] : NULL;
}

utf8proc_category_t fm_uc_category(int32_t cp) {
    const fm_unidata_entry *e = delta(cp);
    return e ? (utf8proc_category_t)e->category : utf8proc_category(cp);
}

int fm_uc_ccc(int32_t cp) {
    const fm_unidata_entry *e = delta(cp);
    return e ? e->ccc : utf8proc_get_property(cp)->combining_class;
}

/* Copy sequence k of fm_unidata_seq into out (cap entries); its length. */
static int seq_copy(uint16_t k, int32_t *out, int cap) {
    int n = fm_unidata_seq[k];
    for (int i = 0; i < n && i < cap; i++) out[i] = fm_unidata_seq[k + 1 + i];
    return n < cap ? n : cap;
}

int fm_uc_lower(int32_t cp, int32_t out[3]) {
    const fm_unidata_entry *e = delta(cp);
    if (e && e->lower) return seq_copy(e->lower, out, 3);
    out[0] = utf8proc_tolower(cp);
    return 1;
}

int fm_uc_nfd(int32_t cp, int32_t *out, int cap) {
    const fm_unidata_entry *e = delta(cp);
    if (e && e->nfd) return seq_copy(e->nfd, out, cap);
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, out, cap, UTF8PROC_DECOMPOSE, &last);
    if (n < 1 || n > cap) { /* cannot happen: decompositions are at most 4 long */
        out[0] = cp;
        return 1;
    }
    return (int)n;
}

static int in_ranges(const int32_t (*r)[2], size_t n, int32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid][1] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && r[lo][0] <= cp;
}

int fm_uc_cased(int32_t cp) { return in_ranges(fm_unidata_cased, fm_unidata_ncased, cp); }
int fm_uc_case_ignorable(int32_t cp) { return in_ranges(fm_unidata_case_ignorable, fm_unidata_ncase_ignorable, cp); }
