/* test_tokenizer.c: the vocab reader, BERT's WordPiece tokenizer and the
 * classifier encoding.
 *
 * Expected ids come from the real bert-base-uncased vocab.txt (the id of a
 * token is its 0-based line number: `grep -nxF TOKEN vocab.txt` minus one);
 * each comment derives the word pieces by the reference's rules. Those tests
 * skip when the shared data is absent; the tests on a small in-memory vocab
 * always run. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "fileio.h"
#include "fm.h"
#include "tokenizer.h"
#include "tokjson.h"
#include "vocab.h"

/* ------------------------------------------------------------- helpers */

static fm_tokenizer real_tok;     /* bert-base-uncased */
static int have_real;

static int setup_real(void **state) {
    (void)state;
    const char *d = tu_data_dir();
    if (!d) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab/bert-base-uncased-vocab.txt", d);
    if (!fm_file_exists(path)) return 0;
    if (fm_tokenizer_load(&real_tok, path, NULL) != FM_OK) {
        fprintf(stderr, "%s\n", fm_last_error());
        return -1;
    }
    have_real = 1;
    return 0;
}

static int teardown_real(void **state) {
    (void)state;
    if (have_real) fm_tokenizer_free(&real_tok);
    have_real = 0;
    return 0;
}

#define NEED_REAL()                                                                                                    \
    do {                                                                                                               \
        if (!have_real) {                                                                                              \
            fprintf(stderr, "skipped: no shared data (vocab/bert-base-uncased-vocab.txt)\n");                         \
            skip();                                                                                                    \
        }                                                                                                              \
    } while (0)

/* Tokenize text and compare with the expected ids (n of them). */
static void expect_ids_(const fm_tokenizer *t, const char *text, size_t len, const int32_t *want, size_t n,
                        const char *file, int line) {
    fm_ids got = {0};
    if (fm_tokenize(t, text, len, &got) != FM_OK) {
        print_error("%s:%d: fm_tokenize failed: %s\n", file, line, fm_last_error());
        _fail(file, line);
    }
    int same = got.n == n;
    for (size_t i = 0; same && i < n; i++) same = got.ids[i] == want[i];
    if (!same) {
        char buf[4096];
        size_t k = 0;
        for (size_t i = 0; i < got.n && k < sizeof buf - 64; i++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, " %d(%s)", got.ids[i], fm_vocab_token(&t->vocab, got.ids[i]));
        buf[k] = '\0';
        print_error("%s:%d: tokenize(\"%.80s\"): got%s\n", file, line, text, buf);
        fm_ids_free(&got);
        _fail(file, line);
    }
    /* The ASCII fast paths must agree with the all-Unicode path. */
    fm_tokenizer slow = *t;
    slow.opts.no_fast_path = 1;
    fm_ids got2 = {0};
    assert_int_equal(fm_tokenize(&slow, text, len, &got2), FM_OK);
    assert_int_equal(got2.n, got.n);
    assert_memory_equal(got2.ids, got.ids, got.n * sizeof *got.ids);
    fm_ids_free(&got);
    fm_ids_free(&got2);
}
#define EXPECT_IDS(t, text, ...)                                                                                       \
    do {                                                                                                               \
        static const int32_t want_[] = {__VA_ARGS__};                                                                  \
        expect_ids_(t, text, strlen(text), want_, sizeof want_ / sizeof want_[0], __FILE__, __LINE__);                \
    } while (0)
#define EXPECT_NO_IDS(t, text) expect_ids_(t, text, strlen(text), NULL, 0, __FILE__, __LINE__)

/* A small vocabulary for tests without the shared data. Ids: [PAD] 0,
 * [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then the list below from 5. */
static const char small_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
                                  "un\n"      /* 5 */
                                  "##aff\n"   /* 6 */
                                  "##able\n"  /* 7 */
                                  "aff\n"     /* 8 */
                                  "a\n"       /* 9 */
                                  "##a\n"     /* 10 */
                                  "!\n"       /* 11 */
                                  ",\n"       /* 12 */
                                  "cafe\n"    /* 13 */
                                  "café\n"    /* 14 */
                                  "Cafe\n"    /* 15 */
                                  "中\n"      /* 16 */
                                  "##b\n"     /* 17 */
                                  "b\n";      /* 18 */

static void small_tokenizer(fm_tokenizer *t, int lower) {
    fm_vocab v;
    assert_int_equal(fm_vocab_parse(&v, "small", small_vocab, strlen(small_vocab)), FM_OK);
    fm_tokenizer_opts o = fm_tokenizer_default_opts();
    o.do_lower_case = lower;
    assert_int_equal(fm_tokenizer_init(t, &v, &o), FM_OK);
}

/* ------------------------------------------------------- vocab reading */

static void test_vocab_parse(void **state) {
    (void)state;
    fm_vocab v;
    /* CRLF line ends, no final newline: ids are line numbers. */
    const char *txt = "[PAD]\r\nhello\r\n##lo\r\nwörld";
    assert_int_equal(fm_vocab_parse(&v, "v.txt", txt, strlen(txt)), FM_OK);
    assert_int_equal(v.n, 4);
    assert_int_equal(fm_vocab_find(&v, "hello", 5), 1);
    assert_int_equal(fm_vocab_find(&v, "##lo", 4), 2);
    assert_int_equal(fm_vocab_find(&v, "wörld", strlen("wörld")), 3);
    assert_int_equal(fm_vocab_find(&v, "hell", 4), -1);
    assert_string_equal(fm_vocab_token(&v, 1), "hello");
    assert_null(fm_vocab_token(&v, 4));
    assert_null(fm_vocab_token(&v, -1));
    fm_vocab_free(&v);
}

static void expect_vocab_error(const char *txt, size_t len, const char *msg) {
    fm_vocab v;
    assert_int_equal(fm_vocab_parse(&v, "vocab.txt", txt, len), FM_ERR);
    tu_assert_contains(fm_last_error(), msg);
    assert_int_equal(v.n, 0);
}

static void test_vocab_errors(void **state) {
    (void)state;
    expect_vocab_error("", 0, "vocab.txt: empty file");
    expect_vocab_error("a\nb\na\n", 6, "vocab.txt:3: duplicate token 'a' (first on line 1");
    expect_vocab_error("a\n\nb\n", 5, "vocab.txt:2: empty line");
    expect_vocab_error("a\r\n\r\n", 5, "vocab.txt:2: empty line");
    expect_vocab_error("a\nb\xff\n", 5, "vocab.txt:2: invalid UTF-8 at byte 2");
    expect_vocab_error("a\nb\0c\n", 6, "vocab.txt:2: invalid UTF-8");
    assert_int_equal(fm_vocab_load(&(fm_vocab){0}, "/nonexistent/vocab.txt"), FM_ERR);
    tu_assert_contains(fm_last_error(), "/nonexistent/vocab.txt: No such file");
}

static void test_tokenizer_needs_specials(void **state) {
    (void)state;
    fm_vocab v;
    const char *txt = "[PAD]\n[UNK]\n[CLS]\nhello\n";
    assert_int_equal(fm_vocab_parse(&v, "v", txt, strlen(txt)), FM_OK);
    fm_tokenizer t;
    assert_int_equal(fm_tokenizer_init(&t, &v, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), "no separator ([SEP]) token '[SEP]'");
    fm_tokenizer_free(&t);
}

/* ----------------------------------------- WordPiece on a small vocab */

static void test_wordpiece_small(void **state) {
    (void)state;
    fm_tokenizer t;
    small_tokenizer(&t, 1);
    assert_int_equal(t.mask_id, 4);
    /* Greedy longest match first: "unaffable" -> un ##aff ##able. */
    EXPECT_IDS(&t, "unaffable", 5, 6, 7);
    /* "aff" is a word; "affa" -> aff ##a; "ab" -> a ##b. */
    EXPECT_IDS(&t, "aff affa ab", 8, 8, 10, 9, 17);
    /* "unaffablex": "##x" is not in the vocab, so the whole word is [UNK],
     * not "un ##aff ##able [UNK]". */
    EXPECT_IDS(&t, "unaffablex b", 1, 18);
    /* 100 characters: a + 99 x ##a; 101 characters: [UNK]. */
    char w[102];
    memset(w, 'a', 101);
    w[100] = '\0';
    fm_ids ids = {0};
    assert_int_equal(fm_tokenize(&t, w, 100, &ids), FM_OK);
    assert_int_equal(ids.n, 100);
    assert_int_equal(ids.ids[0], 9);
    assert_int_equal(ids.ids[99], 10);
    ids.n = 0;
    w[100] = 'a';
    w[101] = '\0';
    assert_int_equal(fm_tokenize(&t, w, 101, &ids), FM_OK);
    assert_int_equal(ids.n, 1);
    assert_int_equal(ids.ids[0], 1);
    fm_ids_free(&ids);
    /* The limit counts characters, not bytes: 60 "é" (120 bytes, 60
     * characters) strip to 60 "e"s, not in this vocab: one [UNK] either
     * way, so check the count on "ä" -> "a": a + 59 x ##a. */
    char u[256] = "";
    for (int i = 0; i < 60; i++) strcat(u, "\xc3\xa4");
    ids.n = 0;
    assert_int_equal(fm_tokenize(&t, u, strlen(u), &ids), FM_OK);
    assert_int_equal(ids.n, 60);
    fm_ids_free(&ids);
    fm_tokenizer_free(&t);
}

static void test_cased_small(void **state) {
    (void)state;
    fm_tokenizer t;
    small_tokenizer(&t, 0);
    /* Cased: no lower-casing, no accent stripping: "Cafe" and "café" are
     * whole words of their own; "cafe" too. */
    EXPECT_IDS(&t, "Cafe café cafe", 15, 14, 13);
    /* No normalization in cased mode: "cafe" + U+0301 stays decomposed, and
     * no vocabulary piece has the lone mark: [UNK]. The Python reference
     * composes it (NFC) to "café" first. */
    EXPECT_IDS(&t, "cafe\xcc\x81", 1);
    fm_tokenizer py = t;
    py.opts.reference = FM_TOK_PYTHON;
    EXPECT_IDS(&py, "cafe\xcc\x81", 14);
    /* Special tokens are matched case-sensitively in cased mode too. */
    EXPECT_IDS(&t, "[SEP]b[MASK]", 3, 18, 4);
    fm_tokenizer_free(&t);
    small_tokenizer(&t, 1);
    /* Uncased: all three become "cafe". */
    EXPECT_IDS(&t, "Cafe café CAFÉ", 13, 13, 13);
    fm_tokenizer_free(&t);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    fm_tokenizer t;
    small_tokenizer(&t, 1);
    fm_ids ids = {0};
    assert_int_equal(fm_tokenize(&t, "ab\xc3(", 4, &ids), FM_ERR);
    tu_assert_contains(fm_last_error(), "invalid UTF-8 at byte 2");
    /* Overlong encodings and UTF-16 surrogates are invalid too. */
    assert_int_equal(fm_tokenize(&t, "\xc0\xaf", 2, &ids), FM_ERR);
    assert_int_equal(fm_tokenize(&t, "\xed\xa0\x80", 3, &ids), FM_ERR);
    fm_ids_free(&ids);
    fm_tokenizer_free(&t);
}

/* ------------------------------------------- the real uncased vocab */

static void test_real_basic(void **state) {
    (void)state;
    NEED_REAL();
    const fm_tokenizer *t = &real_tok;
    assert_int_equal(t->pad_id, 0);
    assert_int_equal(t->unk_id, 100);
    assert_int_equal(t->cls_id, 101);
    assert_int_equal(t->sep_id, 102);
    assert_int_equal(t->mask_id, 103);
    /* Lower-cased, punctuation split off: hello 7592 , 1010 world 2088 ! 999. */
    EXPECT_IDS(t, "Hello, World!", 7592, 1010, 2088, 999);
    /* Accents: "Café naïve" -> lower "café naïve" -> NFD + drop Mn (U+0301,
     * U+0308) -> "cafe naive": cafe 7668, naive 15743. */
    EXPECT_IDS(t, "Café naïve", 7668, 15743);
    /* The same with decomposed input (e + U+0301): identical. */
    EXPECT_IDS(t, "Cafe\xcc\x81 nai\xcc\x88ve", 7668, 15743);
    /* "İstanbul": "İ".lower() is "i" + U+0307, the mark is stripped:
     * istanbul 9960. */
    EXPECT_IDS(t, "İstanbul", 9960);
    /* Lower-casing sees the whole text: a capital sigma that ends a word is
     * a final sigma: "ΟΔΟΣ" -> "οδος" -> ο 1169, ##δ 29722, ##ος 15297; inside
     * a word it is σ: "ΟΔΟΣΟ" -> ο ##δ ##ο 29730 ##σ 29733 ##ο. */
    EXPECT_IDS(t, "ΟΔΟΣ", 1169, 29722, 15297);
    EXPECT_IDS(t, "ΟΔΟΣΟ", 1169, 29722, 29730, 29733, 29730);
    /* The Python reference lower-cases character by character: "οδοσ" ->
     * ο ##δ ##ο ##σ. */
    fm_tokenizer py = *t;
    py.opts.reference = FM_TOK_PYTHON;
    EXPECT_IDS(&py, "ΟΔΟΣ", 1169, 29722, 29730, 29733);
    /* Contractions and hyphens: don 2123 ' 1005 t 1056 stop 2644 - 1011
     * believing 8929. */
    EXPECT_IDS(t, "don't stop-believing", 2123, 1005, 1056, 2644, 1011, 8929);
    /* ASCII symbols that are not Unicode punctuation ($ &) split too:
     * $ 1002, 3 1017, . 1012, 50 2753, & 1004, 100 2531, % 1003. */
    EXPECT_IDS(t, "$3.50 & 100%", 1002, 1017, 1012, 2753, 1004, 2531, 1003);
    /* WordPiece: una 14477 ##ffa 20961 ##ble 3468 (greedy: "una" is the
     * longest vocabulary prefix of "unaffable"). */
    EXPECT_IDS(t, "unaffable", 14477, 20961, 3468);
    EXPECT_IDS(t, "antidisestablishmentarianism", 3424, 10521, 4355, 7875, 13602, 3672, 12199, 2964);
}

static void test_real_cjk(void **state) {
    (void)state;
    NEED_REAL();
    const fm_tokenizer *t = &real_tok;
    /* CJK ideographs get spaces around them, so "中文" is two words:
     * i 1045 ate 8823 中 1746 文 1861 su 10514 ##shi 6182. */
    EXPECT_IDS(t, "I ate 中文sushi", 1045, 8823, 1746, 1861, 10514, 6182);
    /* 中 1746 国 1799. */
    EXPECT_IDS(t, "中国", 1746, 1799);
    /* Hiragana is not in the CJK ranges: "ひらがな" stays one word; accent
     * stripping decomposes "が" into "か" + U+3099 (Mn) and drops the mark:
     * ひ 1673 ##ら 30211 ##か 30177 ##な 30193. */
    EXPECT_IDS(t, "ひらがな", 1673, 30211, 30177, 30193);
    /* Hangul isn't either; NFD splits each syllable into its jamo (category
     * Lo, kept): 한 = U+1112 U+1161 U+11AB -> ᄒ 1469 ##ᅡ 30006 ##ᆫ 30021,
     * 국 -> ##ᄀ 29991 ##ᅮ 30014 ##ᆨ 30020, 어 -> ##ᄋ 29999 ##ᅥ 30008. */
    EXPECT_IDS(t, "한국어", 1469, 30006, 30021, 29991, 30014, 30020, 29999, 30008);
}

static void test_real_controls_whitespace(void **state) {
    (void)state;
    NEED_REAL();
    const fm_tokenizer *t = &real_tok;
    /* NUL, BEL (Cc) and ZERO WIDTH SPACE (Cf) are dropped, joining the
     * pieces around them: "helloworld!" -> hello 7592 ##world 11108 ! 999. */
    static const char s[] = "hello\0wor\ald\xe2\x80\x8b!";
    size_t k = sizeof s - 1;
    static const int32_t want[] = {7592, 11108, 999};
    expect_ids_(t, s, k, want, 3, __FILE__, __LINE__);
    /* \t \n \r, NO-BREAK SPACE and IDEOGRAPHIC SPACE (Zs) and LINE
     * SEPARATOR separate words: a 1037 ... f 1042. */
    EXPECT_IDS(t, "a\tb\nc\rd\xc2\xa0" "e\xe3\x80\x80" "f\xe2\x80\xa8g", 1037, 1038, 1039, 1040, 1041, 1042, 1043);
    /* U+FFFD and private use (Co) are dropped: "x\uE000y\uFFFDz" is "xyz":
     * x 1060 ##y 2100 ##z 2480. */
    EXPECT_IDS(t, "x\xee\x80\x80y\xef\xbf\xbdz", 1060, 2100, 2480);
    /* Empty text and whitespace-only text give no ids. */
    EXPECT_NO_IDS(t, "");
    EXPECT_NO_IDS(t, " \t\r\n\xc2\xa0 ");
    EXPECT_NO_IDS(t, "\x01\x02\x7f");
}

static void test_real_unknown(void **state) {
    (void)state;
    NEED_REAL();
    const fm_tokenizer *t = &real_tok;
    /* Emoji are So (not punctuation): "😀" is a word with no vocabulary
     * piece: [UNK] 100; "emoji" -> em 7861 ##oj 29147 ##i 2072; "👍🏽" is one
     * word: [UNK]. */
    EXPECT_IDS(t, "😀 emoji 👍🏽", 100, 7861, 29147, 2072, 100);
    /* Glued to a word, the emoji makes the whole word [UNK]. */
    EXPECT_IDS(t, "hi😀 there", 100, 2045);
    /* Over-long words: 101 x's -> [UNK]; 100 a's -> aaa 13360, then
     * 48 x ##aa 11057, then ##a 2050 (3 + 2*48 + 1 = 100 characters). */
    char w[128];
    memset(w, 'x', 101);
    w[101] = '\0';
    EXPECT_IDS(t, w, 100);
    memset(w, 'a', 100);
    w[100] = '\0';
    fm_ids ids = {0};
    assert_int_equal(fm_tokenize(t, w, 100, &ids), FM_OK);
    assert_int_equal(ids.n, 50);
    assert_int_equal(ids.ids[0], 13360);
    for (int i = 1; i < 49; i++) assert_int_equal(ids.ids[i], 11057);
    assert_int_equal(ids.ids[49], 2050);
    fm_ids_free(&ids);
    /* Fullwidth letters and circled digits have no pieces: [UNK]. */
    EXPECT_IDS(t, "ＡＢＣ ①", 100, 100);
}

static void test_real_special_tokens(void **state) {
    (void)state;
    NEED_REAL();
    const fm_tokenizer *t = &real_tok;
    /* Exact special-token text is the token (HF's default): [CLS] 101,
     * [MASK] 103 even glued to "x" 1060; "[cls]" is text: [ 1031 cl 18856
     * ##s 2015 ] 1033. */
    EXPECT_IDS(t, "[CLS] [cls] [MASK]x", 101, 1031, 18856, 2015, 1033, 103, 1060);
    /* Inside words too: a [SEP] b -> a 1037 [SEP] 102 b 1038. */
    EXPECT_IDS(t, "a[SEP]b [PAD][UNK]", 1037, 102, 1038, 0, 100);
    /* split_special_tokens (Google's tokenizer): "[SEP]" is [ sep ]:
     * [ 1031, sep 19802, ] 1033. */
    fm_tokenizer g = *t;
    g.opts.split_special_tokens = 1;
    EXPECT_IDS(&g, "[SEP]", 1031, 19802, 1033);
}

static void test_real_encode(void **state) {
    (void)state;
    NEED_REAL();
    const fm_tokenizer *t = &real_tok;
    int32_t ids[16], types[16], mask[16];
    fm_encoding e = {ids, types, mask, 0};
    /* Single: [CLS] hello world [SEP], padded to 6 with [PAD] = 0. */
    assert_int_equal(fm_encode(t, "Hello world", 11, NULL, 0, 8, 6, &e), FM_OK);
    assert_int_equal(e.len, 4);
    int32_t w1[] = {101, 7592, 2088, 102, 0, 0}, t1[] = {0, 0, 0, 0, 0, 0}, m1[] = {1, 1, 1, 1, 0, 0};
    assert_memory_equal(ids, w1, sizeof w1);
    assert_memory_equal(types, t1, sizeof t1);
    assert_memory_equal(mask, m1, sizeof m1);
    /* Empty text: [CLS] [SEP]. */
    assert_int_equal(fm_encode(t, "", 0, NULL, 0, 8, 0, &e), FM_OK);
    assert_int_equal(e.len, 2);
    assert_int_equal(ids[0], 101);
    assert_int_equal(ids[1], 102);
    /* Pair with truncation to 8: a = the quick brown fox jumps over the
     * lazy dog (9 pieces: the 1996 quick 4248 brown 2829 fox 4419 jumps
     * 14523 over 2058 the lazy 13971 dog 3899), b = hello world (2). The
     * budget is 8 - 3 = 5: a is longer until it has 3 pieces, so 6 pops from
     * a: [CLS] the quick brown [SEP] hello world [SEP]. Token types: 0 up to
     * and including the first [SEP], 1 after. */
    const char *a = "The quick brown fox jumps over the lazy dog", *b = "hello world";
    assert_int_equal(fm_encode(t, a, strlen(a), b, strlen(b), 8, 10, &e), FM_OK);
    assert_int_equal(e.len, 8);
    int32_t w2[] = {101, 1996, 4248, 2829, 102, 7592, 2088, 102, 0, 0};
    int32_t t2[] = {0, 0, 0, 0, 0, 1, 1, 1, 0, 0}, m2[] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    assert_memory_equal(ids, w2, sizeof w2);
    assert_memory_equal(types, t2, sizeof t2);
    assert_memory_equal(mask, m2, sizeof m2);
    /* Ties drop from b: a = b = "the quick brown" (3 each), max 7 -> budget
     * 4: (3,3) tie -> b pops to 2; (3,2) a pops to 2. [CLS] the quick [SEP]
     * the quick [SEP]. */
    const char *c = "the quick brown";
    assert_int_equal(fm_encode(t, c, strlen(c), c, strlen(c), 7, 0, &e), FM_OK);
    int32_t w3[] = {101, 1996, 4248, 102, 1996, 4248, 102};
    assert_int_equal(e.len, 7);
    assert_memory_equal(ids, w3, sizeof w3);
    /* Single sequences truncate at the end: max 4 -> [CLS] the quick [SEP]. */
    assert_int_equal(fm_encode(t, a, strlen(a), NULL, 0, 4, 0, &e), FM_OK);
    int32_t w4[] = {101, 1996, 4248, 102};
    assert_int_equal(e.len, 4);
    assert_memory_equal(ids, w4, sizeof w4);
    /* Too small for the special tokens; longer than the padding. */
    assert_int_equal(fm_encode(t, a, strlen(a), b, strlen(b), 2, 0, &e), FM_ERR);
    tu_assert_contains(fm_last_error(), "max_seq_length 2 is too small");
    assert_int_equal(fm_encode(t, a, strlen(a), NULL, 0, 0, 4, &e), FM_ERR);
    tu_assert_contains(fm_last_error(), "exceeds the padded length 4");
}

static void test_truncate_pair(void **state) {
    (void)state;
    size_t a = 10, b = 3;
    fm_truncate_pair(&a, &b, 8); /* a pops to 5: (5,3) */
    assert_int_equal(a, 5);
    assert_int_equal(b, 3);
    a = 4, b = 4;
    fm_truncate_pair(&a, &b, 5); /* (4,4)->(4,3)->(3,3)->(3,2) */
    assert_int_equal(a, 3);
    assert_int_equal(b, 2);
    a = 7, b = 0;
    fm_truncate_pair(&a, &b, 2);
    assert_int_equal(a, 2);
    a = 1, b = 1;
    fm_truncate_pair(&a, &b, 0);
    assert_int_equal(a + b, 0);
}

/* Tokenize every text of SST-2's train set (67,349 lines): the speed the
 * trainer relies on, and the fast paths agree with the Unicode path on the
 * dev set. */
static void test_real_sst2_speed(void **state) {
    (void)state;
    NEED_REAL();
    char path[4096];
    snprintf(path, sizeof path, "%s/glue/SST-2/train.tsv", tu_data_dir());
    char *data;
    size_t len;
    if (fm_read_file(path, &data, &len) != FM_OK) {
        fprintf(stderr, "skipped: %s\n", fm_last_error());
        skip();
    }
    fm_ids ids = {0};
    size_t lines = 0, pieces = 0;
    double t0 = fm_now();
    for (char *p = strchr(data, '\n') + 1; p && *p;) { /* skip the header */
        char *nl = strchr(p, '\n'), *tab = memchr(p, '\t', nl ? (size_t)(nl - p) : strlen(p));
        size_t n = tab ? (size_t)(tab - p) : nl ? (size_t)(nl - p) : strlen(p);
        ids.n = 0;
        assert_int_equal(fm_tokenize(&real_tok, p, n, &ids), FM_OK);
        pieces += ids.n;
        lines++;
        p = nl ? nl + 1 : NULL;
    }
    double dt = fm_now() - t0;
    fprintf(stderr, "SST-2 train: %zu lines, %zu word pieces in %.3f s (%.0f lines/s)\n", lines, pieces, dt,
            (double)lines / dt);
    assert_int_equal(lines, 67349);
    assert_true(dt < 30.0); /* about 0.1 s in a Release build */
    fm_ids_free(&ids);
    free(data);
}

/* ----------------------------------- HuggingFace's tokenizers, rare text */

static void test_real_hf_unicode(void **state) {
    (void)state;
    NEED_REAL();
    const fm_tokenizer *t = &real_tok;
    /* Unassigned code points (Cn) are kept, not dropped: "x" U+2065 "y" is
     * one word with no pieces: [UNK] 100, z 1062. */
    EXPECT_IDS(t, "x\xe2\x81\xa5y z", 100, 1062);
    EXPECT_IDS(t, "\xe2\x81\xa5", 100);
    /* U+FAEA (unassigned, in the CJK compatibility block) is spaced like an
     * ideograph: a 1037 [UNK] b 1038. */
    EXPECT_IDS(t, "a\xef\xab\xaa" "b", 1037, 100, 1038);
    /* Ideographs beyond U+FFFF are not spaced: U+20000 U+20001 "ab" is one
     * word: [UNK]. */
    EXPECT_IDS(t, "\xf0\xa0\x80\x80\xf0\xa0\x80\x81" "ab", 100);
    /* A run of emoji is one word, one [UNK]; a ZWJ sequence too (U+200D is
     * dropped, U+FE0F is a mark and stripped): [UNK] a 1037 [UNK]. */
    EXPECT_IDS(t, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80 a \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xef\xb8\x8f",
               100, 1037, 100);
    /* U+1B4E is punctuation since Unicode 16 (utf8proc 2.8 has it
     * unassigned): it splits "a" from "b": a [UNK] b. */
    EXPECT_IDS(t, "a\xe1\xad\x8e" "b", 1037, 100, 1038);
    /* Final sigma, decided on the whole text: "aΣ." -> a ##ς . ; "Σ" alone
     * is σ 1173; "ΣΑ" -> σ ##α. */
    EXPECT_IDS(t, "a\xce\xa3.", 1037, 19579, 1012);
    EXPECT_IDS(t, "\xce\xa3", 1173);
    EXPECT_IDS(t, "\xce\xa3\xce\x91", 1173, 14608);
    /* No NFC: the compatibility ideograph U+F900 decomposes (NFD, accent
     * stripping) to U+8C48, which is not in the vocabulary: [UNK]. */
    EXPECT_IDS(t, "\xef\xa4\x80", 100);
}

/* --------------------------------------------------- tokenizer.json */

/* A tokenizer.json with a seven-token vocabulary and one added word. */
static const char small_json_head[] =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":0,\"content\":\"[PAD]\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":3,\"content\":\"</s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":8,\"content\":\"W\xc3\xb6rld\",\"special\":false,\"lstrip\":true}],";
static const char small_json_tail[] =
    "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\","
    "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}],"
    "\"pair\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
    "{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}},"
    "{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":1}}]},"
    "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":\"@@\","
    "\"max_input_chars_per_word\":6,"
    "\"vocab\":{\"[PAD]\":0,\"<unk>\":1,\"<s>\":2,\"</s>\":3,\"hello\":4,\",\":5,\"@@o\":6,\"caf\\u00e9\":7}}}";

static int parse_small_json(fm_tokenizer *t, const char *normalizer) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s\"normalizer\":%s,%s", small_json_head, normalizer, small_json_tail);
    return fm_tokenizer_json_parse(t, "tokenizer.json", buf, strlen(buf), NULL);
}

static void test_tokjson_small(void **state) {
    (void)state;
    fm_tokenizer t;
    assert_int_equal(parse_small_json(&t, "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":"
                                          "true,\"strip_accents\":null,\"lowercase\":true}"),
                     FM_OK);
    assert_int_equal(t.vocab.n, 9);
    assert_int_equal(t.unk_id, 1);
    assert_int_equal(t.cls_id, 2);
    assert_int_equal(t.sep_id, 3);
    assert_int_equal(t.opts.max_input_chars_per_word, 6);
    assert_int_equal(t.opts.strip_accents, -1);
    /* hello , then the raw special "<s>", the normalized added word
     * ("wörld" -> "world" matches "Wörld" normalized), the prefix "@@":
     * "helloo" -> hello @@o; 7 characters -> <unk>. */
    EXPECT_IDS(&t, "Hello,<s> W\xc3\xb6rld world helloo hellooo", 4, 5, 2, 8, 8, 4, 6, 1);
    /* strip_accents null follows lowercase: "Café" -> "cafe", not in the vocab. */
    EXPECT_IDS(&t, "Caf\xc3\xa9", 1);
    fm_tokenizer_free(&t);

    /* Lower-case but keep accents: "Café" -> "café" 7. */
    assert_int_equal(parse_small_json(&t, "{\"type\":\"BertNormalizer\",\"strip_accents\":false,\"lowercase\":true}"),
                     FM_OK);
    EXPECT_IDS(&t, "CAF\xc3\x89", 7);
    fm_tokenizer_free(&t);
    /* A cased model: "Hello" is not "hello". */
    assert_int_equal(parse_small_json(&t, "{\"type\":\"BertNormalizer\",\"lowercase\":false}"), FM_OK);
    assert_int_equal(t.opts.do_lower_case, 0);
    EXPECT_IDS(&t, "Hello hello caf\xc3\xa9", 1, 4, 7);
    fm_tokenizer_free(&t);
    /* No normalizer at all: controls stay (U+0001 makes "hello" unknown). */
    assert_int_equal(parse_small_json(&t, "null"), FM_OK);
    EXPECT_IDS(&t, "hel\x01lo hello", 1, 4);
    fm_tokenizer_free(&t);
}

/* fm_tokenizer_json_parse must refuse text and name what is wrong. */
static void expect_json_error(const char *text, const char *needle) {
    fm_tokenizer t;
    if (fm_tokenizer_json_parse(&t, "tokenizer.json", text, strlen(text), NULL) == FM_OK) {
        fm_tokenizer_free(&t);
        fail_msg("accepted: %s", text);
    }
    tu_assert_contains(fm_last_error(), needle);
}

static void test_tokjson_errors(void **state) {
    (void)state;
#define M "\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3}}"
#define P "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}"
    /* The minimal accepted file: no normalizer key (BertNormalizer absent
     * means none), default template tokens. */
    fm_tokenizer t;
    const char *ok = "{" M "," P "}";
    assert_int_equal(fm_tokenizer_json_parse(&t, "tokenizer.json", ok, strlen(ok), NULL), FM_OK);
    fm_tokenizer_free(&t);
    expect_json_error("{" M ",", "tokenizer.json:1:");
    expect_json_error("[]", "tokenizer.json: the top level is a list, expected an object");
    expect_json_error("{" P "}", "no model");
    expect_json_error("{\"model\":{\"type\":\"BPE\"}," P "}", "model.type is \"BPE\", expected \"WordPiece\"");
    expect_json_error("{" M "}", "pre_tokenizer is absent, expected {\"type\": \"BertPreTokenizer\"}");
    expect_json_error("{" M ",\"pre_tokenizer\":{\"type\":\"Whitespace\"}}", "pre_tokenizer is of type \"Whitespace\"");
    expect_json_error("{" M "," P ",\"normalizer\":{\"type\":\"Sequence\"}}",
                      "normalizer.type is \"Sequence\", expected \"BertNormalizer\"");
    expect_json_error("{" M "," P ",\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":1}}",
                      "normalizer.lowercase is an integer, expected true or false");
    expect_json_error("{" M "," P ",\"normalizer\":{\"type\":\"BertNormalizer\",\"strip_accents\":\"no\"}}",
                      "normalizer.strip_accents is a string, expected true, false or null");
    expect_json_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[PAD]\":0,\"[UNK]\":0}}," P "}",
                      "model.vocab gives id 0 to both");
    expect_json_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[PAD]\":0,\"[UNK]\":5}}," P "}",
                      "model.vocab[\"[UNK]\"] is an integer out of range, expected an id in [0, 2)");
    expect_json_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2}}," P "}",
                      "no separator ([SEP]) token '[SEP]'");
    expect_json_error("{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"<unk>\",\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,"
                      "\"[CLS]\":2,\"[SEP]\":3}}," P "}",
                      "no unknown token '<unk>'");
    expect_json_error("{" M "," P ",\"added_tokens\":[{\"id\":1,\"content\":\"[MASK]\"}]}",
                      "added_tokens[0] \"[MASK]\" has id 1, which model.vocab gives to \"[UNK]\"");
    expect_json_error("{" M "," P ",\"added_tokens\":[{\"id\":5,\"content\":\"[MASK]\"}]}",
                      "added_tokens[0] \"[MASK]\": id 5 is not the next free id after model.vocab's 4 tokens");
    expect_json_error("{" M "," P ",\"added_tokens\":[{\"id\":5,\"content\":\"x\"},{\"id\":0,\"content\":\"[PAD]\"}]}",
                      "added_tokens skip id 4");
    expect_json_error("{" M "," P ",\"added_tokens\":[{\"id\":4,\"content\":\"\"}]}", "content is empty");
    expect_json_error("{" M "," P ",\"post_processor\":{\"type\":\"RobertaProcessing\"}}",
                      "post_processor.type is \"RobertaProcessing\"");
    expect_json_error("{" M "," P ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[],\"pair\":[]}}",
                      "the single and pair templates must be [CLS] A [SEP]");
    expect_json_error("{\"model\":{\"type\":\"WordPiece\",\"max_input_chars_per_word\":0,\"vocab\":{\"a\":0}}," P "}",
                      "model.max_input_chars_per_word is an integer, expected an integer >= 1");
#undef M
#undef P
}

static void test_tokenizer_dir(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    assert_int_equal(tu_write_file(path, small_vocab, strlen(small_vocab)), 0);
    fm_tokenizer t;
    char *source;
    /* vocab.txt alone: uncased. */
    assert_int_equal(fm_tokenizer_load_dir(&t, dir, NULL, -1, &source), FM_OK);
    tu_assert_contains(source, "/vocab.txt");
    free(source);
    EXPECT_IDS(&t, "Cafe", 13);
    fm_tokenizer_free(&t);
    /* tokenizer_config.json says cased. */
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *cfg = "{\"do_lower_case\": false, \"model_max_length\": 512}";
    assert_int_equal(tu_write_file(path, cfg, strlen(cfg)), 0);
    assert_int_equal(fm_tokenizer_load_dir(&t, dir, NULL, -1, NULL), FM_OK);
    EXPECT_IDS(&t, "Cafe", 15);
    fm_tokenizer_free(&t);
    /* ... unless the caller forces the case. */
    assert_int_equal(fm_tokenizer_load_dir(&t, dir, NULL, 1, NULL), FM_OK);
    EXPECT_IDS(&t, "Cafe", 13);
    fm_tokenizer_free(&t);
    /* A broken tokenizer_config.json is an error naming it. */
    assert_int_equal(tu_write_file(path, "{\"do_lower_case\": \"no\"}", 23), 0);
    assert_int_equal(fm_tokenizer_load_dir(&t, dir, NULL, -1, NULL), FM_ERR);
    tu_assert_contains(fm_last_error(), "tokenizer_config.json: do_lower_case is a string, expected true or false");
    /* tokenizer.json wins over both. */
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s\"normalizer\":null,%s", small_json_head, small_json_tail);
    assert_int_equal(tu_write_file(path, buf, strlen(buf)), 0);
    assert_int_equal(fm_tokenizer_load_dir(&t, dir, NULL, -1, &source), FM_OK);
    tu_assert_contains(source, "/tokenizer.json");
    free(source);
    assert_int_equal(t.vocab.n, 9);
    fm_tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest small[] = {
        cmocka_unit_test(test_vocab_parse),      cmocka_unit_test(test_vocab_errors),
        cmocka_unit_test(test_tokenizer_needs_specials), cmocka_unit_test(test_wordpiece_small),
        cmocka_unit_test(test_cased_small),      cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_truncate_pair),    cmocka_unit_test(test_tokjson_small),
        cmocka_unit_test(test_tokjson_errors),   cmocka_unit_test(test_tokenizer_dir),
    };
    const struct CMUnitTest real[] = {
        cmocka_unit_test(test_real_basic),           cmocka_unit_test(test_real_cjk),
        cmocka_unit_test(test_real_controls_whitespace), cmocka_unit_test(test_real_unknown),
        cmocka_unit_test(test_real_special_tokens),  cmocka_unit_test(test_real_encode),
        cmocka_unit_test(test_real_sst2_speed),      cmocka_unit_test(test_real_hf_unicode),
    };
    int rc = cmocka_run_group_tests_name("tokenizer (small vocab)", small, NULL, NULL);
    rc |= cmocka_run_group_tests_name("tokenizer (bert-base-uncased vocab)", real, setup_real, teardown_real);
    return rc;
}
