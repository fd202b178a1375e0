/* tokenizer.c: BERT's WordPiece tokenizer and classifier encoding (see
 * tokenizer.h for the exact behaviour). Unicode properties, case mapping and
 * normalisation come from utf8proc. Plain ASCII, the common case, takes
 * byte-level fast paths that give the same result as the Unicode path
 * (checked by the tests and the fuzz target with opts.no_fast_path). */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "fm.h"

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
    fm_tokenizer_opts o = {.do_lower_case = 1,
                           .tokenize_chinese_chars = 1,
                           .split_special_tokens = 0,
                           .max_input_chars_per_word = 100,
                           .no_fast_path = 0};
    return o;
}

int fm_tokenizer_init(fm_tokenizer *t, fm_vocab *vocab, const fm_tokenizer_opts *opts) {
    memset(t, 0, sizeof *t);
    t->vocab = *vocab;
    fm_vocab_init(vocab);
    t->opts = opts ? *opts : fm_tokenizer_default_opts();
    if (t->opts.max_input_chars_per_word <= 0) t->opts.max_input_chars_per_word = 100;
    static const char *const names[FM_NUM_SPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int k = 0; k < FM_NUM_SPECIAL; k++) {
        t->special[k] = names[k];
        t->special_id[k] = fm_vocab_find(&t->vocab, names[k], strlen(names[k]));
        if (t->special_id[k] < 0 && k < 4)
            return fm_fail("the vocabulary has no %s token (expected a BERT vocab.txt with [PAD], [UNK], [CLS], [SEP])",
                           names[k]);
    }
    t->pad_id = t->special_id[0];
    t->unk_id = t->special_id[1];
    t->cls_id = t->special_id[2];
    t->sep_id = t->special_id[3];
    /* HF maps a special token missing from the vocabulary to [UNK]. */
    if (t->special_id[4] < 0) t->special_id[4] = t->unk_id;
    t->mask_id = t->special_id[4];
    return FM_OK;
}

void fm_tokenizer_free(fm_tokenizer *t) {
    fm_vocab_free(&t->vocab);
    memset(t, 0, sizeof *t);
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

/* The reference's CJK ideograph ranges. */
static int is_cjk(int32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int is_ascii_punct(int32_t c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

static int is_punct(int32_t cp) {
    if (cp < 0x80) return is_ascii_punct(cp);
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
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

/* Scratch space of one fm_tokenize call. */
typedef struct {
    bytes clean; /* stage A output */
    bytes word;  /* accent-stripped word */
} scratch;

/* Stages 2-4: lower-case (uncased), drop NUL / U+FFFD / C*, whitespace to a
 * space, spaces around CJK. Sets *non_ascii when the output has any. */
static void clean_text(const fm_tokenizer *t, const unsigned char *s, size_t n, bytes *out, int *non_ascii) {
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

/* Stage 7: WordPiece of one punctuation-free, whitespace-free piece. */
static void wordpiece(const fm_tokenizer *t, const unsigned char *p, size_t n, fm_ids *out) {
    if (n == 0) return;
    const fm_vocab *v = &t->vocab;
    size_t nchars = 0;
    for (size_t i = 0; i < n; i++) nchars += (p[i] & 0xC0) != 0x80;
    if (nchars > (size_t)t->opts.max_input_chars_per_word) {
        fm_ids_push(out, t->unk_id);
        return;
    }
    size_t mark = out->n, start = 0;
    while (start < n) {
        size_t np = start > 0 ? 2 : 0;
        /* Longer candidates than the longest vocabulary token cannot match. */
        size_t end = n;
        if (v->max_len < np || end - start > v->max_len - np) {
            end = v->max_len < np ? start : start + (v->max_len - np);
            while (end > start && (p[end] & 0xC0) == 0x80) end--;
        }
        int32_t id = -1;
        while (end > start) {
            id = vocab_find2(v, "##", np, p + start, end - start);
            if (id >= 0) break;
            do end--;
            while (end > start && (p[end] & 0xC0) == 0x80);
        }
        if (id < 0) { /* one piece failed: the whole word is [UNK] */
            out->n = mark;
            fm_ids_push(out, t->unk_id);
            return;
        }
        fm_ids_push(out, id);
        start = end;
    }
}

/* Stages 6-7 for one word (NFC, no whitespace). */
static void tokenize_word(const fm_tokenizer *t, const unsigned char *w, size_t n, scratch *sc, fm_ids *out) {
    if (!t->opts.split_special_tokens && (n == 5 || n == 6) && w[0] == '[') {
        for (int k = 0; k < FM_NUM_SPECIAL; k++)
            if (strlen(t->special[k]) == n && !memcmp(w, t->special[k], n)) {
                fm_ids_push(out, t->special_id[k]);
                return;
            }
    }
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = w[i] < 0x80;
    unsigned char *nfd = NULL;
    if (t->opts.do_lower_case && (!ascii || t->opts.no_fast_path)) {
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

/* Stages 2-7 for text holding no special token. */
static void tokenize_segment(const fm_tokenizer *t, const unsigned char *s, size_t n, scratch *sc, fm_ids *out) {
    sc->clean.n = 0;
    int non_ascii = 0;
    clean_text(t, s, n, &sc->clean, &non_ascii);
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
            if (i > w) tokenize_word(t, c + w, i - w, sc, out);
            i += sep;
            w = i;
        } else {
            i++;
        }
    }
    if (cn > w) tokenize_word(t, c + w, cn - w, sc, out);
    free(nfc);
}

int fm_tokenize(const fm_tokenizer *t, const char *text, size_t len, fm_ids *out) {
    const unsigned char *s = (const unsigned char *)text;
    size_t bad = utf8_invalid_at(s, len);
    if (bad < len) return fm_fail("invalid UTF-8 at byte %zu", bad);
    scratch sc = {{0}, {0}};
    /* Stage 1: exact special-token text splits the input. */
    size_t seg = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '[' || t->opts.split_special_tokens) continue;
        for (int k = 0; k < FM_NUM_SPECIAL; k++) {
            size_t l = strlen(t->special[k]);
            if (l <= len - i && !memcmp(s + i, t->special[k], l)) {
                if (i > seg) tokenize_segment(t, s + seg, i - seg, &sc, out);
                fm_ids_push(out, t->special_id[k]);
                seg = i + l;
                i = seg - 1;
                break;
            }
        }
    }
    if (len > seg) tokenize_segment(t, s + seg, len - seg, &sc, out);
    free(sc.clean.p);
    free(sc.word.p);
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
