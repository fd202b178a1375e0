/* test_synth.c: the demo's generated data: every GLUE file of the eight
 * tasks loads with the real readers (io/glue.c) with the expected counts and
 * both classes present, the vocabulary has BERT's special ids and covers
 * every generated text without [UNK], and two generations are the same bytes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demodata.h"
#include "fileio.h"
#include "fm.h"
#include "glue.h"
#include "synth.h"
#include "testutil.h"
#include "tokenizer.h"
#include "vocab.h"

#define SCALE 0.05

static const char *files[] = {
    "corpus.txt",          "vocab.txt",           "glue/CoLA/train.tsv", "glue/CoLA/dev.tsv",
    "glue/CoLA/test.tsv",  "glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "glue/SST-2/test.tsv",
    "glue/MRPC/train.tsv", "glue/MRPC/dev.tsv",   "glue/MRPC/test.tsv",  "glue/STS-B/train.tsv",
    "glue/STS-B/dev.tsv",  "glue/STS-B/test.tsv", "glue/QQP/train.tsv",  "glue/QQP/dev.tsv",
    "glue/QQP/test.tsv",   "glue/MNLI/train.tsv", "glue/MNLI/dev_matched.tsv", "glue/MNLI/dev_mismatched.tsv",
    "glue/MNLI/test_matched.tsv", "glue/MNLI/test_mismatched.tsv", "glue/QNLI/train.tsv", "glue/QNLI/dev.tsv",
    "glue/QNLI/test.tsv",  "glue/RTE/train.tsv",  "glue/RTE/dev.tsv",    "glue/RTE/test.tsv",
};

static int count_unk(const fm_tokenizer *tok, const char *text) {
    fm_ids ids = {0};
    assert_int_equal(fm_tokenize(tok, text, strlen(text), &ids), FM_OK);
    int n = 0;
    for (size_t i = 0; i < ids.n; i++) n += ids.ids[i] == tok->unk_id;
    fm_ids_free(&ids);
    return n;
}

static void test_glue_files_load(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    assert_int_equal(fm_demo_write_data(dir, 0, SCALE), FM_OK);
    char *vp = fm_path_join(dir, "vocab.txt");
    fm_tokenizer tok;
    assert_int_equal(fm_tokenizer_load(&tok, vp, NULL), FM_OK);
    assert_int_equal(tok.pad_id, 0);
    assert_int_equal(tok.unk_id, 100);
    assert_int_equal(tok.cls_id, 101);
    assert_int_equal(tok.sep_id, 102);
    assert_int_equal(tok.mask_id, 103);
    char *glue = fm_path_join(dir, "glue");
    for (int t = 0; t < FM_SYNTH_NTASKS; t++) {
        const fm_glue_task *task = fm_glue_task_find(fm_synth_task_names[t]);
        assert_non_null(task);
        int n[3];
        fm_demo_sizes(t, SCALE, &n[0], &n[1], &n[2]);
        fm_glue_split splits[] = {FM_GLUE_TRAIN, FM_GLUE_DEV, FM_GLUE_TEST, FM_GLUE_DEV_MISMATCHED,
                                  FM_GLUE_TEST_MISMATCHED};
        int nsplits = task->dev_mm_file ? 5 : 3;
        for (int s = 0; s < nsplits; s++) {
            fm_glue_set set;
            if (fm_glue_load(&set, task, splits[s], glue) != FM_OK) fail_msg("%s", fm_last_error());
            int want = n[s == 0 ? 0 : (s == 1 || s == 3) ? 1 : 2];
            assert_int_equal((int)set.n, want);
            assert_int_equal((int)set.skipped, 0);
            int seen[3] = {0, 0, 0};
            for (size_t i = 0; i < set.n; i++) {
                const fm_glue_example *e = &set.ex[i];
                assert_int_equal(count_unk(&tok, e->text_a), 0);
                if (task->is_pair) {
                    assert_non_null(e->text_b);
                    assert_int_equal(count_unk(&tok, e->text_b), 0);
                }
                if (splits[s] == FM_GLUE_TEST || splits[s] == FM_GLUE_TEST_MISMATCHED) {
                    assert_int_equal(e->label, -1);
                    assert_non_null(e->id);
                } else if (task->is_regression) {
                    assert_true(e->score >= 0 && e->score <= 5);
                } else {
                    assert_true(e->label >= 0 && e->label < task->num_labels);
                    seen[e->label]++;
                }
            }
            if (!task->is_regression && s != 2 && s != 4)
                for (int k = 0; k < task->num_labels; k++)
                    if (!seen[k]) fail_msg("%s %s: no example of label %d", task->name, fm_glue_split_name(splits[s]), k);
            fm_glue_set_free(&set);
        }
    }
    /* the corpus too has no unknown words */
    char *cp = fm_path_join(dir, "corpus.txt"), *text;
    size_t len;
    assert_int_equal(fm_read_file(cp, &text, &len), FM_OK);
    assert_int_equal((int64_t)(memchr(text, '\t', len) != NULL), 0);
    assert_int_equal(count_unk(&tok, text), 0);
    free(text);
    free(cp);
    free(glue);
    free(vp);
    fm_tokenizer_free(&tok);
    tu_rmtree(dir);
    free(dir);
}

static void test_identical_bytes(void **state) {
    (void)state;
    char *a = tu_mkdtemp(), *b = tu_mkdtemp();
    assert_int_equal(fm_demo_write_data(a, 7, SCALE), FM_OK);
    assert_int_equal(fm_demo_write_data(b, 7, SCALE), FM_OK);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *pa = fm_path_join(a, files[i]), *pb = fm_path_join(b, files[i]), *da, *db;
        size_t la, lb;
        if (fm_read_file(pa, &da, &la) != FM_OK) fail_msg("%s", fm_last_error());
        assert_int_equal(fm_read_file(pb, &db, &lb), FM_OK);
        assert_true(la > 0);
        assert_int_equal(la, lb);
        assert_memory_equal(da, db, la);
        free(da);
        free(db);
        free(pa);
        free(pb);
    }
    /* another seed gives other text */
    char *c = tu_mkdtemp();
    assert_int_equal(fm_demo_write_data(c, 8, SCALE), FM_OK);
    char *pa = fm_path_join(a, "glue/SST-2/train.tsv"), *pc = fm_path_join(c, "glue/SST-2/train.tsv"), *da, *dc;
    size_t la, lc;
    assert_int_equal(fm_read_file(pa, &da, &la), FM_OK);
    assert_int_equal(fm_read_file(pc, &dc, &lc), FM_OK);
    assert_true(la != lc || memcmp(da, dc, la) != 0);
    free(da);
    free(dc);
    free(pa);
    free(pc);
    tu_rmtree(a);
    tu_rmtree(b);
    tu_rmtree(c);
    free(a);
    free(b);
    free(c);
}

/* The demo's nouns (subjects, then objects); the pair tasks use them unreworded. */
static const char *const nouns[] = {"dog",  "teacher", "farmer", "child", "king", "pilot",
                                    "book", "house",   "car",    "ball",  "boat", "cake"};
/* Adjectives and adverbs with their synonyms (each pair: base, synonym). */
static const char *const modifiers[][2] = {
    {"small", "little"},    {"old", "ancient"},     {"big", "large"},         {"quiet", "silent"},
    {"new", "fresh"},       {"red", "red"},         {"green", "green"},       {"tall", "tall"},
    {"quickly", "rapidly"}, {"slowly", "gradually"}, {"carefully", "cautiously"}, {"quietly", "softly"},
    {"often", "frequently"}, {"rarely", "seldom"}};
#define NADJ 8 /* the first 8 rows of modifiers are adjectives, the rest adverbs */
static const char *const place_nouns[] = {"park", "lake", "market", "sea", "school", "station", "hill", "village"};
static const char *const time_words[] = {"yesterday", "today", "tonight", "later"};

/* Split text at spaces into at most 64 words (in buf). */
static int split_words(char *buf, size_t cap, const char *text, const char **w) {
    snprintf(buf, cap, "%s", text);
    int n = 0;
    for (char *t = strtok(buf, " "); t && n < 64; t = strtok(NULL, " ")) w[n++] = t;
    return n;
}

static int has_word(const char *text, const char *word) {
    char buf[512];
    const char *w[64];
    int n = split_words(buf, sizeof buf, text, w);
    for (int i = 0; i < n; i++)
        if (!strcmp(w[i], word)) return 1;
    return 0;
}

static int has_any(const char *text, const char *const *words, int n) {
    for (int i = 0; i < n; i++)
        if (has_word(text, words[i])) return 1;
    return 0;
}

/* The nouns of a: how many there are, and how many of them b has too. */
static void nouns_shared(const char *a, const char *b, int *na, int *shared) {
    *na = *shared = 0;
    for (size_t k = 0; k < sizeof nouns / sizeof nouns[0]; k++)
        if (has_word(a, nouns[k])) {
            (*na)++;
            *shared += has_word(b, nouns[k]);
        }
}

/* A question's form from its first words: 0 what, 1 who, 2 where, 3 when, 4 how. */
static int question_form(const char *q) {
    static const char *const starts[][2] = {{"what ", "which thing "}, {"who ", "which person "},
                                            {"where ", "in which place "}, {"when ", "at what time "},
                                            {"how ", "in what way "}};
    for (int f = 0; f < 5; f++)
        for (int k = 0; k < 2; k++)
            if (!strncmp(q, starts[f][k], strlen(starts[f][k]))) return f;
    return -1;
}

/* The optional parts of a sentence, as indices (-1 absent) with synonyms
 * folded: adjective of the subject and of the object, adverb, place, time. */
typedef struct {
    int sadj, oadj, adv, place, time;
} slots;

static slots parse_slots(const char *text) {
    slots s = {-1, -1, -1, -1, -1};
    char buf[512];
    const char *w[64];
    int n = split_words(buf, sizeof buf, text, w), seen_subj = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 6; k++) seen_subj |= !strcmp(w[i], nouns[k]);
        for (int m = 0; m < (int)(sizeof modifiers / sizeof modifiers[0]); m++)
            if (!strcmp(w[i], modifiers[m][0]) || !strcmp(w[i], modifiers[m][1])) {
                if (m >= NADJ) s.adv = m;
                else if (seen_subj) s.oadj = m;
                else s.sadj = m;
            }
        for (int k = 0; k < 8; k++)
            if (!strcmp(w[i], place_nouns[k])) s.place = k;
        for (int k = 0; k < 4; k++)
            if (!strcmp(w[i], time_words[k])) s.time = k;
    }
    return s;
}

/* Every optional part h has, p has too (the same word or its synonym). */
static int slots_within(slots h, slots p) {
    return (h.sadj < 0 || h.sadj == p.sadj) && (h.oadj < 0 || h.oadj == p.oadj) && (h.adv < 0 || h.adv == p.adv) &&
           (h.place < 0 || h.place == p.place) && (h.time < 0 || h.time == p.time);
}

/* Labels follow the text: a few hand-checked rules on generated examples. */
static void test_labels_follow_text(void **state) {
    (void)state;
    int seen[8][3] = {{0}};
    for (uint64_t i = 0; i < 400; i++) {
        fm_synth_example e;
        fm_synth_example_make(&e, 0, 1, 0, i); /* SST-2 */
        int neg = strstr(e.a.s, " not ") != NULL;
        static const char *pos[] = {"good", "great", "wonderful", "lovely", "brilliant",
                                    "pleasant", "excellent", "beautiful", "delightful", "charming"};
        int p = 0;
        for (int k = 0; k < 10; k++) {
            char w[32];
            snprintf(w, sizeof w, " %s ", pos[k]);
            p |= strstr(e.a.s, w) != NULL;
        }
        assert_int_equal(e.label, p ^ neg);
        fm_synth_example_free(&e);
        fm_synth_example_make(&e, 0, 3, 0, i); /* STS-B: the score counts the content words kept */
        {
            char ba[512], bb[512];
            const char *wa[64], *wb[64];
            int na = split_words(ba, sizeof ba, e.a.s, wa), nb = split_words(bb, sizeof bb, e.b.s, wb);
            assert_int_equal(na, 8); /* det adj subject verb det adj object . */
            assert_true(nb >= 6 && nb <= 8);
            /* the adjectives b still has, plus subject, verb and object kept */
            int kept = (nb - 6) + has_word(e.b.s, wa[2]) + has_word(e.b.s, wa[3]) + has_word(e.b.s, wa[6]);
            assert_true(fabs(e.score - kept) < 1e-9);
            assert_int_equal(has_word(e.b.s, "person"), !has_word(e.b.s, wa[2]));
            assert_int_equal(has_word(e.b.s, "has"), !has_word(e.b.s, wa[3]));
            seen[3][(int)e.score % 3] = 1;
        }
        fm_synth_example_free(&e);
        int na, shared;
        fm_synth_example_make(&e, 0, 2, 0, i); /* MRPC: paraphrase iff the polarity is kept */
        nouns_shared(e.a.s, e.b.s, &na, &shared);
        assert_int_equal(na, 2);
        assert_int_equal(shared, 2);
        assert_int_equal(e.label, has_word(e.a.s, "not") == has_word(e.b.s, "not"));
        seen[2][e.label] = 1;
        fm_synth_example_free(&e);
        fm_synth_example_make(&e, 0, 4, 0, i); /* QQP: duplicate iff both ask in the same form */
        {
            int fa = question_form(e.a.s), fb = question_form(e.b.s);
            assert_true(fa >= 0 && fb >= 0);
            assert_int_equal(e.label, fa == fb);
            seen[4][e.label] = 1;
        }
        fm_synth_example_free(&e);
        fm_synth_example_make(&e, 0, 6, 0, i); /* QNLI: entailment (0) iff the sentence has what is asked */
        {
            int f = question_form(e.a.s);
            assert_true(f >= 2 && f <= 4);
            nouns_shared(e.b.s, e.a.s, &na, &shared);
            assert_int_equal(shared, na);
            int has = f == 2 ? has_any(e.b.s, place_nouns, 8)
                      : f == 3 ? has_any(e.b.s, time_words, 4)
                               : parse_slots(e.b.s).adv >= 0;
            assert_int_equal(e.label == 0, has);
            seen[6][e.label] = 1;
        }
        fm_synth_example_free(&e);
        fm_synth_example_make(&e, 0, 7, 0, i); /* RTE: entailment (0) iff no negation and nothing added */
        nouns_shared(e.b.s, e.a.s, &na, &shared);
        assert_int_equal(na, 2);
        assert_int_equal(shared, 2);
        assert_int_equal(e.label == 0,
                         !has_word(e.b.s, "not") && slots_within(parse_slots(e.b.s), parse_slots(e.a.s)));
        seen[7][e.label] = 1;
        fm_synth_example_free(&e);
        fm_synth_example_make(&e, 0, 5, 0, i); /* MNLI: contradiction iff the hypothesis negates */
        assert_int_equal(e.label == 0, strstr(e.b.s, "does not") != NULL);
        if (e.label != 0) /* entailment iff nothing is added */
            assert_int_equal(e.label == 1, slots_within(parse_slots(e.b.s), parse_slots(e.a.s)));
        seen[5][e.label] = 1;
        fm_synth_example_free(&e);
    }
    /* every class occurs */
    for (int t = 2; t < 8; t++)
        for (int c = 0; c < (t == 5 || t == 3 ? 3 : 2); c++) assert_true(seen[t][c]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glue_files_load),
        cmocka_unit_test(test_identical_bytes),
        cmocka_unit_test(test_labels_follow_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
