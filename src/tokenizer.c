/* tokenizer.c: BERT's WordPiece tokenizer and classifier encoding (see
 * tokenizer.h for the exact behaviour). Unicode properties come from
 * unicode.h (utf8proc and the generated corrections of unidata.c); the
 * Python reference's path uses utf8proc alone. Plain ASCII, the common case,
 * takes byte-level fast paths that give the same result as the Unicode path
 * (checked by the tests and the fuzz target with opts.no_fast_path). */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "fm.h"
#include "unicode.h"

/* ---------------------------------------------------------------- vocab */

/* FNV-1a, continued from h so that "##" + piece hashes without a copy. */
#define FNV_OFFSET 0xcbf29ce484222325ULL
static uint64_t fnv_more(uint64_t h, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void fm_vocab_init(fm_vocab *v) { memset(v, 0, sizeof *v); }

void fm_vocab_free(fm_vocab *v) {
    for (int32_t i = 0; i < v->n; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->lens);
    free(v->slots);
    fm_vocab_init(v);
}

static void vocab_insert_slot(fm_vocab *v, int32_t id) {
    uint64_t h = fnv_more(FNV_OFFSET, (const unsigned char *)v->tokens[id], v->lens[id]);
    size_t mask = v->nslots - 1, i = (size_t)h & mask;
    while (v->slots[i] >= 0) i = (i + 1) & mask;
    v->slots[i] = id;
}

static void vocab_rehash(fm_vocab *v, size_t nslots) {
    free(v->slots);
    v->nslots = nslots;
    v->slots = fm_xmalloc(nslots * sizeof *v->slots);
    memset(v->slots, 0xff, nslots * sizeof *v->slots); /* all -1 */
    for (int32_t i = 0; i < v->n; i++) vocab_insert_slot(v, i);
}

/* The id of prefix + s (prefix: "" or "##"), or -1. */
static int32_t vocab_find2(const fm_vocab *v, const char *prefix, size_t np, const unsigned char *s, size_t n) {
    if (!v->nslots) return -1;
    uint64_t h = fnv_more(fnv_more(FNV_OFFSET, (const unsigned char *)prefix, np), s, n);
    size_t mask = v->nslots - 1, i = (size_t)h & mask;
    for (int32_t id; (id = v->slots[i]) >= 0; i = (i + 1) & mask) {
        const char *tok = v->tokens[id];
        if (v->lens[id] == np + n && !memcmp(tok, prefix, np) && !memcmp(tok + np, s, n)) return id;
    }
    return -1;
}

int32_t fm_vocab_find(const fm_vocab *v, const char *tok, size_t len) {
    return vocab_find2(v, "", 0, (const unsigned char *)tok, len);
}

int32_t fm_vocab_add(fm_vocab *v, const char *tok, size_t len) {
    if (fm_vocab_find(v, tok, len) >= 0) return FM_ERR;
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 1024;
        v->tokens = fm_xrealloc(v->tokens, (size_t)v->cap * sizeof *v->tokens);
        v->lens = fm_xrealloc(v->lens, (size_t)v->cap * sizeof *v->lens);
    }
    int32_t id = v->n++;
    v->tokens[id] = fm_xmalloc(len + 1);
    memcpy(v->tokens[id], tok, len);
    v->tokens[id][len] = '\0';
    v->lens[id] = (uint32_t)len;
    if (len > v->max_len) v->max_len = len;
    if ((size_t)v->n * 2 > v->nslots)
        vocab_rehash(v, v->nslots ? 2 * v->nslots : 2048);
    else
        vocab_insert_slot(v, id);
    return id;
}

const char *fm_vocab_token(const fm_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? v->tokens[id] : NULL;
}

/* ------------------------------------------------------------- id lists */

void fm_ids_push(fm_ids *a, int32_t id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->ids = fm_xrealloc(a->ids, a->cap * sizeof *a->ids);
    }
    a->ids[a->n++] = id;
}

void fm_ids_free(fm_ids *a) {
    free(a->ids);
    a->ids = NULL;
    a->n = a->cap = 0;
}

/* ------------------------------------------------------------ tokenizer */

fm_tokenizer_opts fm_tokenizer_default_opts(void) {
    fm_tokenizer_opts o = {.reference = FM_TOK_HF,
                           .do_lower_case = 1,
                           .strip_accents = -1,
                           .clean_text = 1,
                           .tokenize_chinese_chars = 1,
                           .split_special_tokens = 0,
                           .max_input_chars_per_word = 100,
                           .no_fast_path = 0};
    return o;
}

/* A growable byte buffer for the stages of one call. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void bytes_reserve(bytes *b, size_t more) {
    if (b->n + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more) cap *= 2;
    b->p = fm_xrealloc(b->p, cap);
    b->cap = cap;
}
static inline void bytes_putc(bytes *b, unsigned char c) {
    bytes_reserve(b, 1);
    b->p[b->n++] = c;
}
static void bytes_put_cp(bytes *b, int32_t cp) {
    bytes_reserve(b, 4);
    b->n += (size_t)utf8proc_encode_char(cp, b->p + b->n);
}

/* A growable array of code points. */
typedef struct {
    int32_t *p;
    size_t n, cap;
} cps;

static inline void cps_push(cps *a, int32_t cp) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->p = fm_xrealloc(a->p, a->cap * sizeof *a->p);
    }
    a->p[a->n++] = cp;
}

/* Scratch space of one fm_tokenize call. */
typedef struct {
    bytes clean; /* a segment after the normalizer */
    bytes word;  /* Python path: an accent-stripped word */
    cps a, b;    /* HF path: code points between the normalizer's stages */
    unsigned char *ccc; /* (b.cap) combining classes of b */
} scratch;

static void scratch_free(scratch *sc) {
    free(sc->clean.p);
    free(sc->word.p);
    free(sc->a.p);
    free(sc->b.p);
    free(sc->ccc);
}

static inline int bit_get(const unsigned char set[32], unsigned char c) { return set[c >> 3] >> (c & 7) & 1; }
static inline void bit_set(unsigned char set[32], unsigned char c) { set[c >> 3] |= (unsigned char)(1u << (c & 7)); }

static int is_ascii_punct(int32_t c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

/* Decode one code point of known-valid UTF-8. */
static inline size_t next_cp(const unsigned char *s, size_t n, int32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    utf8proc_ssize_t k = utf8proc_iterate(s, (utf8proc_ssize_t)n, cp);
    return k > 0 ? (size_t)k : 1; /* cannot fail: the text was validated */
}

/* ------------------------------------------------------------ set-up */

static void normalize_hf(const fm_tokenizer *t, const unsigned char *s, size_t n, scratch *sc, bytes *out);

int fm_tokenizer_init_spec(fm_tokenizer *t, fm_vocab *vocab, const fm_tokenizer_opts *opts,
                           const fm_tokenizer_spec *spec) {
    memset(t, 0, sizeof *t);
    t->vocab = *vocab;
    fm_vocab_init(vocab);
    t->opts = opts ? *opts : fm_tokenizer_default_opts();
    if (t->opts.max_input_chars_per_word <= 0) t->opts.max_input_chars_per_word = 100;
    const char *names[FM_NUM_SPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    const char *prefix = "##";
    if (spec) {
        const char *given[FM_NUM_SPECIAL] = {spec->pad_token, spec->unk_token, spec->cls_token, spec->sep_token,
                                             spec->mask_token};
        for (int k = 0; k < FM_NUM_SPECIAL; k++)
            if (given[k]) names[k] = given[k];
        if (spec->continuing_subword_prefix) prefix = spec->continuing_subword_prefix;
    }
    t->prefix = fm_xstrdup(prefix);
    t->prefix_len = strlen(prefix);
    static const char *const roles[FM_NUM_SPECIAL] = {"padding", "unknown", "classifier ([CLS])", "separator ([SEP])",
                                                       "mask"};
    for (int k = 0; k < FM_NUM_SPECIAL; k++) {
        t->special_buf[k] = fm_xstrdup(names[k]);
        t->special[k] = t->special_buf[k];
        t->special_id[k] = fm_vocab_find(&t->vocab, names[k], strlen(names[k]));
        if (t->special_id[k] < 0 && k < 4)
            return fm_fail("the vocabulary has no %s token '%s' (a BERT vocabulary needs its padding, unknown, "
                           "classifier and separator tokens)",
                           roles[k], names[k]);
    }
    t->pad_id = t->special_id[0];
    t->unk_id = t->special_id[1];
    t->cls_id = t->special_id[2];
    t->sep_id = t->special_id[3];
    /* HF maps a special token missing from the vocabulary to [UNK]. */
    if (t->special_id[4] < 0) t->special_id[4] = t->unk_id;
    t->mask_id = t->special_id[4];

    /* The added tokens: spec's, or the special tokens the vocabulary has. */
    int given = spec && spec->nadded >= 0;
    int n = given ? spec->nadded : FM_NUM_SPECIAL;
    t->added = fm_xcalloc((size_t)(n ? n : 1), sizeof *t->added);
    for (int k = 0; k < n; k++) {
        const char *c = given ? spec->added_content[k] : t->special[k];
        int32_t id = fm_vocab_find(&t->vocab, c, strlen(c));
        if (id < 0) {
            if (!given) continue; /* no [MASK]: nothing to match */
            return fm_fail("added token '%s' is not in the vocabulary", c);
        }
        if (!*c) return fm_fail("added token %d is empty (expected its text)", k);
        fm_added_token *a = &t->added[t->nadded++];
        a->content = fm_xstrdup(c);
        a->len = strlen(c);
        a->id = id;
        a->normalized = given && spec->added_normalized ? spec->added_normalized[k] : 0;
        a->lstrip = given && spec->added_lstrip ? spec->added_lstrip[k] : 0;
        a->rstrip = given && spec->added_rstrip ? spec->added_rstrip[k] : 0;
    }
    /* A normalized token is looked for in normalized text: normalize it too. */
    scratch sc;
    memset(&sc, 0, sizeof sc);
    for (int k = 0; k < t->nadded; k++) {
        fm_added_token *a = &t->added[k];
        if (a->normalized) {
            sc.clean.n = 0;
            normalize_hf(t, (const unsigned char *)a->content, a->len, &sc, &sc.clean);
            a->norm = fm_xmalloc(sc.clean.n + 1);
            memcpy(a->norm, sc.clean.p, sc.clean.n);
            a->norm[sc.clean.n] = '\0';
            a->norm_len = sc.clean.n;
            if (a->norm_len) {
                bit_set(t->norm_first, (unsigned char)a->norm[0]);
                t->nnorm++;
            }
        } else {
            bit_set(t->raw_first, (unsigned char)a->content[0]);
            t->nraw++;
        }
    }
    scratch_free(&sc);
    return FM_OK;
}

int fm_tokenizer_init(fm_tokenizer *t, fm_vocab *vocab, const fm_tokenizer_opts *opts) {
    return fm_tokenizer_init_spec(t, vocab, opts, NULL);
}

void fm_tokenizer_free(fm_tokenizer *t) {
    fm_vocab_free(&t->vocab);
    for (int k = 0; k < FM_NUM_SPECIAL; k++) free(t->special_buf[k]);
    for (int k = 0; k < t->nadded; k++) {
        free(t->added[k].content);
        free(t->added[k].norm);
    }
    free(t->added);
    free(t->prefix);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ WordPiece */

/* Stage 8: WordPiece of one word (no whitespace, no punctuation but itself). */
static void wordpiece(const fm_tokenizer *t, const unsigned char *p, size_t n, fm_ids *out) {
    if (n == 0) return;
    const fm_vocab *v = &t->vocab;
    size_t nchars = 0;
    for (size_t i = 0; i < n; i++) nchars += (p[i] & 0xC0) != 0x80;
    if (nchars > (size_t)t->opts.max_input_chars_per_word) {
        fm_ids_push(out, t->unk_id);
        return;
    }
    const size_t pl = t->prefix_len;
    size_t mark = out->n, start = 0;
    while (start < n) {
        size_t np = start > 0 ? pl : 0;
        /* Longer candidates than the longest vocabulary token cannot match. */
        size_t end = n;
        if (v->max_len < np || end - start > v->max_len - np) {
            end = v->max_len < np ? start : start + (v->max_len - np);
            while (end > start && (p[end] & 0xC0) == 0x80) end--;
        }
        int32_t id = -1;
        while (end > start) {
            id = vocab_find2(v, t->prefix, np, p + start, end - start);
            if (id >= 0) break;
            do end--;
            while (end > start && (p[end] & 0xC0) == 0x80);
        }
        if (id < 0) { /* one piece failed: the whole word is unknown */
            out->n = mark;
            fm_ids_push(out, t->unk_id);
            return;
        }
        fm_ids_push(out, id);
        start = end;
    }
}

/* ------------------------------------------------- HuggingFace's pipeline */

/* JavaScript's whitespace (\s): WhiteSpace and LineTerminator. */
static int is_js_space(int32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 9 && cp <= 13);
    if (cp == 0xA0 || cp == 0xFEFF || cp == 0x2028 || cp == 0x2029) return 1;
    return fm_uc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

/* The CJK ranges of the reference as it tests them: per UTF-16 unit, so
 * only ideographs of the Basic Multilingual Plane. */
static int is_bmp_cjk(int32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF);
}

static int all_ascii(const unsigned char *s, size_t n) {
    unsigned char any = 0;
    for (size_t i = 0; i < n; i++) any |= s[i];
    return any < 0x80;
}

/* Unicode's Final_Sigma: a[i] follows a cased letter and precedes none
 * (case-ignorable characters between are skipped on both sides). */
static int final_sigma(const int32_t *a, size_t n, size_t i) {
    size_t j = i;
    int after_cased = 0;
    while (j > 0) {
        int32_t c = a[--j];
        if (fm_uc_case_ignorable(c)) continue;
        after_cased = fm_uc_cased(c);
        break;
    }
    if (!after_cased) return 0;
    for (j = i + 1; j < n; j++) {
        if (fm_uc_case_ignorable(a[j])) continue;
        return !fm_uc_cased(a[j]);
    }
    return 1;
}

/* Stages 2-5 on n bytes of valid UTF-8, appended to out. */
static void normalize_hf(const fm_tokenizer *t, const unsigned char *s, size_t n, scratch *sc, bytes *out) {
    const fm_tokenizer_opts *o = &t->opts;
    const int lower = o->do_lower_case, strip = o->strip_accents < 0 ? lower : o->strip_accents;
    if (!o->no_fast_path && all_ascii(s, n)) {
        /* ASCII: no CJK, nothing to decompose, lower-casing is A-Z only. */
        bytes_reserve(out, n);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = s[i];
            if (o->clean_text) {
                if (c == '\t' || c == '\n' || c == '\r')
                    c = ' ';
                else if (c < 0x20 || c == 0x7f)
                    continue; /* Cc, NUL included */
            }
            if (lower && c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
            out->p[out->n++] = c;
        }
        return;
    }
    /* Clean and space CJK into sc->a. */
    cps *a = &sc->a, *b = &sc->b;
    a->n = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += next_cp(s + i, n - i, &cp);
        if (o->clean_text) {
            if (cp == 0 || cp == 0xFFFD) continue;
            utf8proc_category_t c = fm_uc_category(cp);
            if (cp == '\t' || cp == '\n' || cp == '\r' || c == UTF8PROC_CATEGORY_ZS || cp == 0x2028 || cp == 0x2029)
                cp = ' '; /* JavaScript's whitespace but for \v \f U+FEFF, controls dropped below */
            else if (c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO ||
                     c == UTF8PROC_CATEGORY_CS)
                continue;
        }
        if (o->tokenize_chinese_chars && is_bmp_cjk(cp)) {
            cps_push(a, ' ');
            cps_push(a, cp);
            cps_push(a, ' ');
        } else {
            cps_push(a, cp);
        }
    }
    /* Lower-case the whole text: context decides a capital sigma. */
    if (lower) {
        b->n = 0;
        for (size_t i = 0; i < a->n; i++) {
            int32_t cp = a->p[i];
            if (cp < 0x80) {
                cps_push(b, cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            } else if (cp == 0x3A3) {
                cps_push(b, final_sigma(a->p, a->n, i) ? 0x3C2 : 0x3C3);
            } else {
                int32_t l[3];
                int k = fm_uc_lower(cp, l);
                for (int j = 0; j < k; j++) cps_push(b, l[j]);
            }
        }
        cps tmp = *a;
        *a = *b;
        *b = tmp;
    }
    /* Strip accents: NFD (decompose, then order each run of marks by
     * combining class, stably), then drop every Mn. */
    if (strip) {
        b->n = 0;
        for (size_t i = 0; i < a->n; i++) {
            int32_t cp = a->p[i];
            if (cp < 0xC0) { /* nothing below U+00C0 decomposes */
                cps_push(b, cp);
                continue;
            }
            int32_t d[8];
            int k = fm_uc_nfd(cp, d, 8);
            for (int j = 0; j < k; j++) cps_push(b, d[j]);
        }
        sc->ccc = fm_xrealloc(sc->ccc, b->cap ? b->cap : 1);
        for (size_t i = 0; i < b->n; i++) sc->ccc[i] = b->p[i] < 0x300 ? 0 : (unsigned char)fm_uc_ccc(b->p[i]);
        for (size_t i = 1; i < b->n; i++) { /* insertion sort within runs of non-starters */
            unsigned char c = sc->ccc[i];
            if (c == 0) continue;
            int32_t cp = b->p[i];
            size_t j = i;
            while (j > 0 && sc->ccc[j - 1] > c) {
                b->p[j] = b->p[j - 1];
                sc->ccc[j] = sc->ccc[j - 1];
                j--;
            }
            b->p[j] = cp;
            sc->ccc[j] = c;
        }
        size_t k = 0;
        for (size_t i = 0; i < b->n; i++)
            if (b->p[i] < 0x300 || fm_uc_category(b->p[i]) != UTF8PROC_CATEGORY_MN) b->p[k++] = b->p[i];
        b->n = k;
        cps tmp = *a;
        *a = *b;
        *b = tmp;
    }
    bytes_reserve(out, 4 * a->n);
    for (size_t i = 0; i < a->n; i++) out->n += (size_t)utf8proc_encode_char(a->p[i], out->p + out->n);
}

/* Stages 7-8: split normalized text into words and punctuation, WordPiece
 * each. */
static void words_hf(const fm_tokenizer *t, const unsigned char *w, size_t n, fm_ids *out) {
    size_t i = 0, start = 0;
    while (i < n) {
        unsigned char c = w[i];
        size_t l = 1;
        int space, punct;
        if (c < 0x80) {
            space = c == ' ' || (c >= 9 && c <= 13);
            punct = is_ascii_punct(c);
        } else {
            int32_t cp;
            l = next_cp(w + i, n - i, &cp);
            utf8proc_category_t cat = fm_uc_category(cp);
            space = cat == UTF8PROC_CATEGORY_ZS || cp == 0xFEFF || cp == 0x2028 || cp == 0x2029;
            punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
        }
        if (space || punct) {
            wordpiece(t, w + start, i - start, out);
            if (punct) wordpiece(t, w + i, l, out);
            start = i + l;
        }
        i += l;
    }
    wordpiece(t, w + start, n - start, out);
}

/* The added token whose text (normalized: its normalized text) starts at s,
 * the longest when several do; -1 when none. */
static int match_added(const fm_tokenizer *t, const unsigned char *s, size_t n, int normalized) {
    int best = -1;
    size_t best_len = 0;
    for (int k = 0; k < t->nadded; k++) {
        const fm_added_token *a = &t->added[k];
        if (a->normalized != normalized) continue;
        const char *c = normalized ? a->norm : a->content;
        size_t l = normalized ? a->norm_len : a->len;
        if (l > best_len && l <= n && !memcmp(s, c, l)) {
            best = k;
            best_len = l;
        }
    }
    return best;
}

/* The added token whose text or normalized text is exactly s, or -1. */
static int exact_added(const fm_tokenizer *t, const unsigned char *s, size_t n) {
    if (t->opts.split_special_tokens) return -1;
    for (int k = 0; k < t->nadded; k++) {
        const fm_added_token *a = &t->added[k];
        if ((a->len == n && !memcmp(s, a->content, n)) || (a->norm && a->norm_len == n && !memcmp(s, a->norm, n)))
            return k;
    }
    return -1;
}

/* Text between added tokens: [off, off + len) of the text, or an added
 * token (k >= 0). */
typedef struct {
    size_t off, len;
    int k;
} section;

typedef struct {
    section *p; /* local, or the heap when it outgrows it */
    size_t n, cap;
    section local[8];
} sections;

static void sections_init(sections *s) {
    s->p = s->local;
    s->n = 0;
    s->cap = sizeof s->local / sizeof s->local[0];
}

static void sections_push(sections *s, size_t off, size_t len, int k) {
    if (s->n == s->cap) {
        s->cap *= 2;
        if (s->p == s->local) {
            s->p = fm_xmalloc(s->cap * sizeof *s->p);
            memcpy(s->p, s->local, sizeof s->local);
        } else {
            s->p = fm_xrealloc(s->p, s->cap * sizeof *s->p);
        }
    }
    s->p[s->n++] = (section){off, len, k};
}

static void sections_free(sections *s) {
    if (s->p != s->local) free(s->p);
    sections_init(s);
}

/* The code point ending just before byte `end` of s (valid UTF-8). */
static int32_t prev_cp(const unsigned char *s, size_t end, size_t *l) {
    size_t b = end - 1;
    while (b > 0 && (s[b] & 0xC0) == 0x80) b--;
    int32_t cp;
    next_cp(s + b, end - b, &cp);
    *l = end - b;
    return cp;
}

/* Split s into text and added tokens (raw or normalized ones), then remove
 * the whitespace that lstrip / rstrip tokens take from their neighbours. */
static void split_added(const fm_tokenizer *t, const unsigned char *s, size_t n, int normalized, sections *out) {
    out->n = 0;
    const unsigned char *first = normalized ? t->norm_first : t->raw_first;
    size_t seg = 0;
    if ((normalized ? t->nnorm : t->nraw) && !t->opts.split_special_tokens) {
        for (size_t i = 0; i < n;) {
            int k = bit_get(first, s[i]) ? match_added(t, s + i, n - i, normalized) : -1;
            if (k < 0) {
                i++;
                continue;
            }
            if (i > seg) sections_push(out, seg, i - seg, -1);
            size_t l = normalized ? t->added[k].norm_len : t->added[k].len;
            sections_push(out, i, l, k);
            i += l;
            seg = i;
        }
    }
    if (n > seg) sections_push(out, seg, n - seg, -1);
    for (size_t j = 0; j < out->n; j++) {
        if (out->p[j].k < 0) continue;
        const fm_added_token *a = &t->added[out->p[j].k];
        if (a->lstrip && j > 0 && out->p[j - 1].k < 0) {
            section *p = &out->p[j - 1];
            size_t l;
            while (p->len > 0 && is_js_space(prev_cp(s + p->off, p->len, &l))) p->len -= l;
        }
        if (a->rstrip && j + 1 < out->n && out->p[j + 1].k < 0) {
            section *p = &out->p[j + 1];
            int32_t cp;
            size_t l;
            while (p->len > 0 && (l = next_cp(s + p->off, p->len, &cp), is_js_space(cp))) {
                p->off += l;
                p->len -= l;
            }
        }
    }
}

static void tokenize_hf(const fm_tokenizer *t, const unsigned char *s, size_t len, scratch *sc, fm_ids *out) {
    sections raw, sub;
    sections_init(&raw);
    sections_init(&sub);
    split_added(t, s, len, 0, &raw);
    for (size_t j = 0; j < raw.n; j++) {
        const section *r = &raw.p[j];
        if (r->len == 0) continue;
        int k = r->k >= 0 ? r->k : exact_added(t, s + r->off, r->len);
        if (k >= 0) {
            fm_ids_push(out, t->added[k].id);
            continue;
        }
        sc->clean.n = 0;
        normalize_hf(t, s + r->off, r->len, sc, &sc->clean);
        const unsigned char *c = sc->clean.p;
        split_added(t, c, sc->clean.n, 1, &sub);
        for (size_t i = 0; i < sub.n; i++) {
            const section *q = &sub.p[i];
            if (q->len == 0) continue;
            k = q->k >= 0 ? q->k : exact_added(t, c + q->off, q->len);
            if (k >= 0)
                fm_ids_push(out, t->added[k].id);
            else
                words_hf(t, c + q->off, q->len, out);
        }
    }
    sections_free(&raw);
    sections_free(&sub);
}

/* --------------------------------------------- the Python reference's path */

/* The Python reference's CJK ideograph ranges. */
static int is_cjk(int32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int is_punct(int32_t cp) {
    if (cp < 0x80) return is_ascii_punct(cp);
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* Byte offset of the first invalid UTF-8 sequence, or len when valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return len;
}

/* Python: lower-case per character (uncased), drop NUL, U+FFFD and every C*
 * (Cn too), whitespace to a space, spaces around CJK (all eight ranges).
 * Sets *non_ascii when the output has any. */
static void py_clean_text(const fm_tokenizer *t, const unsigned char *s, size_t n, bytes *out, int *non_ascii) {
    const int lower = t->opts.do_lower_case, fast = !t->opts.no_fast_path;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80 && fast) {
            i++;
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                bytes_putc(out, ' ');
            else if (c < 0x20 || c == 0x7f)
                continue; /* Cc, including NUL */
            else
                bytes_putc(out, lower && c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c);
            continue;
        }
        int32_t cp;
        i += next_cp(s + i, n - i, &cp);
        if (cp == 0 || cp == 0xFFFD) continue;
        if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') {
            bytes_putc(out, ' ');
            continue;
        }
        utf8proc_category_t cat = utf8proc_category(cp);
        if (cat == UTF8PROC_CATEGORY_ZS) {
            bytes_putc(out, ' ');
            continue;
        }
        if (cat == UTF8PROC_CATEGORY_CN || cat >= UTF8PROC_CATEGORY_CC) continue; /* Cn Cc Cf Cs Co */
        if (lower) {
            if (cp == 0x130) { /* Python: "İ".lower() == "i\u0307" */
                bytes_putc(out, 'i');
                bytes_put_cp(out, 0x307);
                *non_ascii = 1;
                continue;
            }
            cp = utf8proc_tolower(cp);
        }
        if (cp >= 0x80) *non_ascii = 1;
        if (t->opts.tokenize_chinese_chars && is_cjk(cp)) {
            bytes_putc(out, ' ');
            bytes_put_cp(out, cp);
            bytes_putc(out, ' ');
        } else {
            bytes_put_cp(out, cp);
        }
    }
}

/* Python: one word (NFC, no whitespace): strip accents, split punctuation,
 * WordPiece. */
static void py_tokenize_word(const fm_tokenizer *t, const unsigned char *w, size_t n, scratch *sc, fm_ids *out) {
    if (!t->opts.split_special_tokens) {
        for (int k = 0; k < FM_NUM_SPECIAL; k++)
            if (strlen(t->special[k]) == n && !memcmp(w, t->special[k], n)) {
                fm_ids_push(out, t->special_id[k]);
                return;
            }
    }
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = w[i] < 0x80;
    unsigned char *nfd = NULL;
    const int strip = t->opts.strip_accents < 0 ? t->opts.do_lower_case : t->opts.strip_accents;
    if (strip && (!ascii || t->opts.no_fast_path)) {
        /* Strip accents: NFD, then drop category Mn. (The word is lower
         * case already: lower-casing is idempotent.) */
        utf8proc_ssize_t k = utf8proc_map(w, (utf8proc_ssize_t)n, &nfd, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
        if (k < 0) { /* out of memory: utf8proc's only failure on valid input */
            fm_print_error("out of memory in Unicode normalisation");
            exit(2);
        }
        sc->word.n = 0;
        for (utf8proc_ssize_t i = 0; i < k;) {
            int32_t cp;
            size_t l = next_cp(nfd + i, (size_t)(k - i), &cp);
            if (cp < 0x80 || utf8proc_category(cp) != UTF8PROC_CATEGORY_MN) {
                bytes_reserve(&sc->word, l);
                memcpy(sc->word.p + sc->word.n, nfd + i, l);
                sc->word.n += l;
            }
            i += (utf8proc_ssize_t)l;
        }
        w = sc->word.p;
        n = sc->word.n;
    }
    if (n == 0) { /* nothing left (w may be NULL) */
        free(nfd);
        return;
    }
    /* Punctuation characters are words of their own. */
    size_t piece = 0, i = 0;
    while (i < n) {
        int32_t cp;
        size_t l = next_cp(w + i, n - i, &cp);
        if (is_punct(cp)) {
            wordpiece(t, w + piece, i - piece, out);
            wordpiece(t, w + i, l, out);
            piece = i + l;
        }
        i += l;
    }
    wordpiece(t, w + piece, n - piece, out);
    free(nfd);
}

/* Python: text holding no special token. */
static void py_tokenize_segment(const fm_tokenizer *t, const unsigned char *s, size_t n, scratch *sc, fm_ids *out) {
    sc->clean.n = 0;
    int non_ascii = 0;
    py_clean_text(t, s, n, &sc->clean, &non_ascii);
    const unsigned char *c = sc->clean.p;
    size_t cn = sc->clean.n;
    unsigned char *nfc = NULL;
    if (non_ascii) {
        utf8proc_ssize_t k = utf8proc_map(c, (utf8proc_ssize_t)cn, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (k < 0) {
            fm_print_error("out of memory in Unicode normalisation");
            exit(2);
        }
        c = nfc;
        cn = (size_t)k;
    }
    /* Words are separated by spaces and by U+2028 / U+2029 (E2 80 A8/A9). */
    size_t i = 0, w = 0;
    while (i < cn) {
        size_t sep = 0;
        if (c[i] == ' ')
            sep = 1;
        else if (c[i] == 0xE2 && i + 2 < cn && c[i + 1] == 0x80 && (c[i + 2] == 0xA8 || c[i + 2] == 0xA9))
            sep = 3;
        if (sep) {
            if (i > w) py_tokenize_word(t, c + w, i - w, sc, out);
            i += sep;
            w = i;
        } else {
            i++;
        }
    }
    if (cn > w) py_tokenize_word(t, c + w, cn - w, sc, out);
    free(nfc);
}

int fm_tokenize(const fm_tokenizer *t, const char *text, size_t len, fm_ids *out) {
    const unsigned char *s = (const unsigned char *)text;
    size_t bad = utf8_invalid_at(s, len);
    if (bad < len) return fm_fail("invalid UTF-8 at byte %zu", bad);
    scratch sc;
    memset(&sc, 0, sizeof sc);
    if (t->opts.reference == FM_TOK_HF) {
        tokenize_hf(t, s, len, &sc, out);
        scratch_free(&sc);
        return FM_OK;
    }
    /* Python: exact special-token text splits the input. */
    size_t seg = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '[' || t->opts.split_special_tokens) continue;
        for (int k = 0; k < FM_NUM_SPECIAL; k++) {
            size_t l = strlen(t->special[k]);
            if (l <= len - i && !memcmp(s + i, t->special[k], l)) {
                if (i > seg) py_tokenize_segment(t, s + seg, i - seg, &sc, out);
                fm_ids_push(out, t->special_id[k]);
                seg = i + l;
                i = seg - 1;
                break;
            }
        }
    }
    if (len > seg) py_tokenize_segment(t, s + seg, len - seg, &sc, out);
    scratch_free(&sc);
    return FM_OK;
}

/* ------------------------------------------------------------- encoding */

void fm_truncate_pair(size_t *n_a, size_t *n_b, size_t max_tokens) {
    while (*n_a + *n_b > max_tokens) {
        if (*n_a > *n_b)
            (*n_a)--;
        else
            (*n_b)--;
    }
}

int fm_encode_ids(const fm_tokenizer *t, const fm_ids *a, const fm_ids *b, int max_seq_length, int pad_to,
                  fm_encoding *enc) {
    size_t na = a->n, nb = b ? b->n : 0;
    int nspecial = b ? 3 : 2;
    if (max_seq_length > 0) {
        if (max_seq_length < nspecial)
            return fm_fail("max_seq_length %d is too small: a %s needs at least %d tokens for [CLS] and [SEP]",
                           max_seq_length, b ? "pair" : "single sequence", nspecial);
        fm_truncate_pair(&na, &nb, (size_t)(max_seq_length - nspecial));
    }
    size_t len = na + nb + (size_t)nspecial;
    if (pad_to > 0 && len > (size_t)pad_to)
        return fm_fail("encoded length %zu exceeds the padded length %d (set max_seq_length)", len, pad_to);
    size_t k = 0;
    enc->input_ids[k] = t->cls_id;
    enc->token_type_ids[k] = 0;
    enc->attention_mask[k++] = 1;
    for (size_t i = 0; i < na; i++) {
        enc->input_ids[k] = a->ids[i];
        enc->token_type_ids[k] = 0;
        enc->attention_mask[k++] = 1;
    }
    enc->input_ids[k] = t->sep_id;
    enc->token_type_ids[k] = 0;
    enc->attention_mask[k++] = 1;
    if (b) {
        for (size_t i = 0; i < nb; i++) {
            enc->input_ids[k] = b->ids[i];
            enc->token_type_ids[k] = 1;
            enc->attention_mask[k++] = 1;
        }
        enc->input_ids[k] = t->sep_id;
        enc->token_type_ids[k] = 1;
        enc->attention_mask[k++] = 1;
    }
    enc->len = (int)k;
    for (; pad_to > 0 && k < (size_t)pad_to; k++) {
        enc->input_ids[k] = t->pad_id;
        enc->token_type_ids[k] = 0;
        enc->attention_mask[k] = 0;
    }
    return FM_OK;
}

int fm_encode(const fm_tokenizer *t, const char *a, size_t a_len, const char *b, size_t b_len, int max_seq_length,
              int pad_to, fm_encoding *enc) {
    fm_ids ia = {0}, ib = {0};
    int rc = fm_tokenize(t, a, a_len, &ia);
    if (rc == FM_OK && b) rc = fm_tokenize(t, b, b_len, &ib);
    if (rc == FM_OK) rc = fm_encode_ids(t, &ia, b ? &ib : NULL, max_seq_length, pad_to, enc);
    fm_ids_free(&ia);
    fm_ids_free(&ib);
    return rc;
}
