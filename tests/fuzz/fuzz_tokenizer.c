/* fuzz_tokenizer.c: bytes as text for BERT's tokenizer. The vocabulary is
 * the real bert-base-uncased one when $FINEMASK_DATA has it, else a small
 * built-in one. The first byte picks the options (cased, special tokens
 * split, CJK off, the word length limit, the Python reference). Checked: valid UTF-8 tokenizes, invalid UTF-8 is
 * rejected with a message; every id is in the vocabulary; the ASCII fast
 * paths give the same ids as the all-Unicode path; a tab-separated pair
 * encodes within max_seq_length with BERT's token types. The same bytes
 * also go through the vocab.txt parser. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "fm.h"
#include "tokenizer.h"
#include "vocab.h"

static fm_vocab base;

static void add(const char *tok) { (void)fm_vocab_add(&base, tok, strlen(tok)); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *d = getenv("FINEMASK_DATA");
    if (d) {
        char path[4096];
        snprintf(path, sizeof path, "%s/vocab/bert-base-uncased-vocab.txt", d);
        if (fm_vocab_load(&base, path) == FM_OK) {
            fprintf(stderr, "fuzz_tokenizer: vocabulary %s (%d tokens)\n", path, (int)base.n);
            return 0;
        }
    }
    fm_vocab_init(&base);
    static const char *const words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff",
                                        "##able", "cafe", "café", "Cafe", "中", "##中", "σ", "##σ", "ς", "i",
                                        "##̇", "ひ", "##ら", "##か", "ﬁ", "ǆ", "##ǆ", "..."};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) add(words[i]);
    char t[4] = "a";
    for (int c = 33; c < 127; c++) {
        t[0] = (char)c;
        t[1] = '\0';
        add(t);
        snprintf(t + 0, sizeof t, "##");
        t[2] = (char)c;
        t[3] = '\0';
        add(t);
    }
    fprintf(stderr, "fuzz_tokenizer: built-in vocabulary (%d tokens)\n", (int)base.n);
    return 0;
}

static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The vocab parser on the raw bytes. */
    fm_vocab pv;
    if (fm_vocab_parse(&pv, "fuzz", (const char *)data, size) == FM_OK) {
        for (int32_t i = 0; i < pv.n; i++) assert(fm_vocab_find(&pv, pv.tokens[i], pv.lens[i]) == i);
        fm_vocab_free(&pv);
    }
    if (size == 0) return 0;
    uint8_t flags = data[0];
    data++, size--;

    /* A tokenizer sharing the base vocabulary (emptied before the tokenizer
     * is freed: t.vocab is base). */
    fm_tokenizer t;
    memset(&t, 0, sizeof t);
    fm_tokenizer_opts o = fm_tokenizer_default_opts();
    o.do_lower_case = !(flags & 1);
    o.split_special_tokens = (flags >> 1) & 1;
    o.tokenize_chinese_chars = !((flags >> 2) & 1);
    if (flags & 8) o.max_input_chars_per_word = 1 + (flags >> 4);
    if (flags & 0x80) o.reference = FM_TOK_PYTHON;
    fm_vocab v = base;
    assert(fm_tokenizer_init(&t, &v, &o) == FM_OK);

    const char *text = (const char *)data;
    fm_ids fast = {0}, slow = {0};
    int rc = fm_tokenize(&t, text, size, &fast);
    if (!valid_utf8(data, size)) {
        assert(rc == FM_ERR && strstr(fm_last_error(), "invalid UTF-8"));
    } else {
        assert(rc == FM_OK);
        for (size_t i = 0; i < fast.n; i++) assert(fast.ids[i] >= 0 && fast.ids[i] < t.vocab.n);
        fm_tokenizer ts = t;
        ts.opts.no_fast_path = 1;
        assert(fm_tokenize(&ts, text, size, &slow) == FM_OK);
        if (slow.n != fast.n || (fast.n && memcmp(slow.ids, fast.ids, fast.n * sizeof *fast.ids))) {
            fprintf(stderr, "fast path and Unicode path disagree: %zu vs %zu ids\n", fast.n, slow.n);
            abort();
        }
        /* Encode as a pair split at the first tab, truncated to 16. */
        const char *tab = memchr(text, '\t', size);
        size_t na = tab ? (size_t)(tab - text) : size;
        int32_t ids[24], types[24], mask[24];
        fm_encoding e = {ids, types, mask, 0};
        rc = fm_encode(&t, text, na, tab ? tab + 1 : NULL, tab ? size - na - 1 : 0, 16, 20, &e);
        assert(rc == FM_OK);
        assert(e.len >= 2 && e.len <= 16);
        assert(ids[0] == t.cls_id && ids[e.len - 1] == t.sep_id);
        for (int i = 0; i < 20; i++) {
            assert(mask[i] == (i < e.len));
            if (i >= e.len) assert(ids[i] == t.pad_id && types[i] == 0);
        }
        assert(types[e.len - 1] == (tab ? 1 : 0));
    }
    fm_ids_free(&fast);
    fm_ids_free(&slow);
    fm_vocab_init(&t.vocab);
    fm_tokenizer_free(&t);
    return 0;
}
