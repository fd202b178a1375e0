/* test_report.c: the gathered-result wire format (round trip, truncation
 * rejected) and the report's science: group means and standard deviations
 * beside the baseline, final and per-tensor sparsities, overlaps counted on
 * packed bits beside random, failures listed, and science.json unchanged when
 * only the timings change; the claims section. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fileio.h"
#include "fm.h"
#include "report.h"
#include "runfiles.h"
#include "testutil.h"

/* A mask of one tensor "encoder.layer.0.attention.self.query.weight" of 16
 * entries, with zeros at the given positions. */
static void mk_mask(fm_mask *m, const int *zeros, int nz) {
    m->n = 1;
    m->t = fm_xcalloc(1, sizeof(fm_mask_tensor));
    fm_mask_tensor *t = &m->t[0];
    snprintf(t->name, sizeof t->name, "encoder.layer.0.attention.self.query.weight");
    t->ndim = 2;
    t->shape[0] = 4;
    t->shape[1] = 4;
    t->numel = 16;
    t->bits = fm_xcalloc(2, 1);
    for (size_t i = 0; i < 16; i++) fm_mask_set(t, i, 1);
    for (int k = 0; k < nz; k++) fm_mask_set(t, (size_t)zeros[k], 0);
    t->ones = fm_mask_count(t);
}

static json_t *rec(int index, const char *task, const char *mode, const char *variant, int seed, double score,
                   double wall) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s.%d", task, mode, seed);
    json_t *r = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:i, s:f, s:s}", "name", name, "index", index, "task", task,
                          "mode", mode, "variant", variant, "weights", "pretrained", "seed", seed, "sparsity", 0.0,
                          "status", "done");
    json_object_set_new(r, "metrics", json_pack("{s:f, s:s, s:i}", "score", score, "score_name", "acc",
                                                "task_storage_bytes", 100 + index));
    json_object_set_new(r, "compute", json_pack("{s:f, s:i}", "wall_seconds", wall, "team", index % 2));
    return r;
}

static void test_pack_roundtrip(void **state) {
    (void)state;
    fm_job_result r = {0};
    r.rec = rec(3, "RTE", "supermask", "s30", 1, 0.625, 1.5);
    int z[] = {0, 5, 15};
    mk_mask(&r.mask, z, 3);
    unsigned char *buf = NULL;
    size_t len = 0;
    fm_result_pack(&r, 1, &buf, &len);
    fm_result_pack(&r, 1, &buf, &len); /* two records back to back */
    fm_job_result a, b;
    size_t used, used2;
    assert_int_equal(fm_result_unpack(&a, buf, len, &used), FM_OK);
    assert_int_equal(fm_result_unpack(&b, buf + used, len - used, &used2), FM_OK);
    assert_int_equal(used + used2, len);
    assert_true(json_equal(a.rec, r.rec));
    assert_int_equal(b.mask.n, 1);
    assert_string_equal(b.mask.t[0].name, r.mask.t[0].name);
    assert_int_equal(b.mask.t[0].numel, 16);
    assert_int_equal(b.mask.t[0].ones, 13);
    assert_memory_equal(b.mask.t[0].bits, r.mask.t[0].bits, 2);
    /* every truncation is rejected */
    for (size_t cut = 0; cut < used; cut++) {
        fm_job_result x;
        size_t u;
        if (fm_result_unpack(&x, buf, cut, &u) == FM_OK) fail_msg("accepted a record cut to %zu bytes", cut);
    }
    /* without the bits: the statistics only, 2 bytes of bits fewer */
    unsigned char *hb = NULL;
    size_t hlen = 0, hu;
    fm_result_pack(&r, 0, &hb, &hlen);
    assert_int_equal(hlen, used - 2);
    fm_job_result h;
    assert_int_equal(fm_result_unpack(&h, hb, hlen, &hu), FM_OK);
    assert_int_equal(hu, hlen);
    assert_int_equal(h.mask.n, 1);
    assert_null(h.mask.t[0].bits);
    assert_int_equal(h.mask.t[0].ones, 13);
    assert_int_equal(fm_result_bits_bytes(&h), 2);
    fm_result_free(&h);
    free(hb);
    fm_result_free(&a);
    fm_result_free(&b);
    fm_result_free(&r);
    free(buf);
}

static void test_report_science(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    fm_job_result res[5] = {{0}};
    /* given out of order: the report sorts by index */
    res[0].rec = rec(1, "RTE", "full", "", 2, 0.70, 10);
    res[1].rec = rec(0, "RTE", "full", "", 1, 0.60, 11);
    res[2].rec = rec(2, "RTE", "supermask", "s30", 1, 0.55, 12);
    res[3].rec = rec(3, "MRPC", "supermask", "s30", 1, 0.80, 13);
    res[4].rec = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:i, s:f, s:s, s:s}", "name", "MRPC.full.1", "index", 4,
                           "task", "MRPC", "mode", "full", "variant", "", "weights", "pretrained", "seed", 1,
                           "sparsity", 0.0, "status", "failed", "error", "glue/MRPC/train.tsv: cannot open");
    json_object_set_new(json_object_get(res[2].rec, "metrics"), "score_samples", json_pack("[f, f]", 0.5, 0.6));
    int za[] = {0, 1, 2, 3}, zb[] = {2, 3, 4, 5, 6, 7, 8, 9};
    mk_mask(&res[2].mask, za, 4);
    mk_mask(&res[3].mask, zb, 8);
    json_t *run = json_pack("{s:s, s:{s:i}, s:[{s:f, s:f, s:i}], s:f}", "name", "t", "layout", "world_size", 2,
                            "teams", "busy_seconds", 5.0, "idle_seconds", 0.5, "jobs", 5, "wall_seconds", 30.0);
    assert_int_equal(fm_report_write(dir, res, 5, run), FM_OK);
    char *rd = fm_path_join(dir, "report"), *sp = fm_path_join(rd, "science.json");
    json_t *sci;
    assert_int_equal(fm_json_read(sp, &sci), FM_OK);
    json_t *g = json_object_get(sci, "groups");
    assert_int_equal(json_array_size(g), 3);
    json_t *g0 = json_array_get(g, 0); /* RTE full: 0.6, 0.7 */
    assert_string_equal(json_string_value(json_object_get(g0, "task")), "RTE");
    assert_int_equal(json_integer_value(json_object_get(g0, "jobs")), 2);
    assert_true(fabs(json_real_value(json_object_get(g0, "score_mean")) - 0.65) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(g0, "score_std")) - sqrt(0.005)) < 1e-9);
    json_t *g1 = json_array_get(g, 1); /* RTE supermask, baseline 0.65, sparsity 4/16 */
    assert_true(fabs(json_real_value(json_object_get(g1, "baseline_mean")) - 0.65) < 1e-12);
    assert_true(json_real_value(json_object_get(g1, "final_sparsity_mean")) == 0.25);
    /* Bernoulli samples pooled: 0.5 and 0.6 */
    assert_int_equal(json_integer_value(json_object_get(g1, "samples")), 2);
    assert_true(fabs(json_real_value(json_object_get(g1, "samples_mean")) - 0.55) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(g1, "samples_std")) - sqrt(0.005)) < 1e-9);
    assert_null(json_object_get(g0, "samples"));
    json_t *g2 = json_array_get(g, 2); /* MRPC supermask: its baseline failed */
    assert_null(json_object_get(g2, "baseline_mean"));
    assert_true(json_real_value(json_object_get(g2, "final_sparsity_mean")) == 0.5);
    /* overlap: RTE zeros {0..3}, MRPC zeros {2..9}: 2 of RTE's 4 shared; random = 8/16 */
    json_t *ov = json_object_get(sci, "overlap");
    assert_int_equal(json_array_size(ov), 2);
    json_t *o0 = json_array_get(ov, 0);
    assert_string_equal(json_string_value(json_object_get(o0, "a")), "RTE");
    assert_true(json_real_value(json_object_get(o0, "shared_zero_fraction")) == 0.5);
    assert_true(json_real_value(json_object_get(o0, "random")) == 0.5);
    json_t *o1 = json_array_get(ov, 1); /* MRPC's 8 zeros, 2 shared; random 4/16 */
    assert_true(json_real_value(json_object_get(o1, "shared_zero_fraction")) == 0.25);
    assert_true(json_real_value(json_object_get(o1, "random")) == 0.25);
    json_t *ls = json_object_get(json_object_get(sci, "layer_sparsity"), "MRPC.supermask.1");
    assert_true(json_real_value(json_object_get(ls, "encoder.layer.0.attention.self.query.weight")) == 0.5);
    json_t *f = json_object_get(sci, "failed");
    assert_int_equal(json_array_size(f), 1);
    tu_assert_contains(json_string_value(json_object_get(json_array_get(f, 0), "error")), "cannot open");
    json_t *jobs = json_object_get(sci, "jobs");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(jobs, 2), "task_storage_bytes")), 102);
    /* Only timings change: science.json keeps its bytes, compute.json does not. */
    char *a = NULL, *b = NULL;
    size_t an, bn;
    assert_int_equal(fm_read_file(sp, &a, &an), FM_OK);
    for (int i = 0; i < 4; i++)
        json_object_set_new(json_object_get(res[i].rec, "compute"), "wall_seconds", json_real(99.0 + i));
    json_object_set_new(run, "wall_seconds", json_real(77.0));
    assert_int_equal(fm_report_write(dir, res, 5, run), FM_OK);
    assert_int_equal(fm_read_file(sp, &b, &bn), FM_OK);
    assert_int_equal(an, bn);
    assert_memory_equal(a, b, an);
    char *cp = fm_path_join(rd, "compute.json");
    json_t *comp;
    assert_int_equal(fm_json_read(cp, &comp), FM_OK);
    assert_true(json_real_value(json_object_get(comp, "wall_seconds")) == 77.0);
    json_decref(comp);
    free(cp);
    free(a);
    free(b);
    json_decref(sci);
    json_decref(run);
    for (int i = 0; i < 5; i++) fm_result_free(&res[i]);
    free(sp);
    free(rd);
    tu_rmtree(dir);
    free(dir);
}

/* A done job over the given weights. */
static json_t *recw(int index, const char *task, const char *mode, const char *weights, double score) {
    json_t *r = rec(index, task, mode, !strcmp(mode, "supermask") ? "s0" : "", 1, score, 1);
    json_object_set_new(r, "weights", json_string(weights));
    char name[64];
    snprintf(name, sizeof name, "%s.%s.%s", task, mode, weights);
    json_object_set_new(r, "name", json_string(name));
    return r;
}

/* The claims: per task the gap full - supermask (close when <= 0.02) and
 * whether the pre-trained supermask beats the shuffled and random controls;
 * absent when no task has full fine-tuning. */
static void test_report_claims(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    fm_job_result res[6] = {{0}};
    res[0].rec = recw(0, "RTE", "full", "pretrained", 0.70);
    res[1].rec = recw(1, "RTE", "supermask", "pretrained", 0.69);
    res[2].rec = recw(2, "RTE", "supermask", "shuffled", 0.60);
    res[3].rec = recw(3, "RTE", "supermask", "random", 0.75);
    res[4].rec = recw(4, "MRPC", "full", "pretrained", 0.80);
    res[5].rec = recw(5, "MRPC", "supermask", "pretrained", 0.70);
    json_t *run = json_pack("{s:s}", "name", "c");
    assert_int_equal(fm_report_write(dir, res, 6, run), FM_OK);
    char *rd = fm_path_join(dir, "report"), *sp = fm_path_join(rd, "science.json"), *mp = fm_path_join(rd, "science.md");
    json_t *sci;
    assert_int_equal(fm_json_read(sp, &sci), FM_OK);
    json_t *c = json_object_get(sci, "claims"), *t = json_object_get(c, "tasks");
    assert_int_equal(json_array_size(t), 2);
    json_t *r0 = json_array_get(t, 0), *r1 = json_array_get(t, 1);
    assert_string_equal(json_string_value(json_object_get(r0, "task")), "RTE");
    assert_true(fabs(json_real_value(json_object_get(r0, "gap")) - 0.01) < 1e-12);
    assert_true(json_is_true(json_object_get(r0, "close")));
    assert_true(json_is_true(json_object_get(r0, "beats_shuffled")));
    assert_true(json_is_false(json_object_get(r0, "beats_random")));
    assert_true(json_real_value(json_object_get(r0, "random")) == 0.75);
    assert_string_equal(json_string_value(json_object_get(r1, "task")), "MRPC");
    assert_true(json_is_false(json_object_get(r1, "close")));
    assert_null(json_object_get(r1, "shuffled"));
    assert_int_equal(json_integer_value(json_object_get(c, "close")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "beats_shuffled")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "shuffled_tasks")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "beats_random")), 0);
    assert_true(fabs(json_real_value(json_object_get(c, "mean_gap")) - 0.055) < 1e-12);
    char *md = NULL;
    size_t mn;
    assert_int_equal(fm_read_file(mp, &md, &mn), FM_OK);
    tu_assert_contains(md, "## Claims as measured");
    tu_assert_contains(md, "| RTE | 0.7000 | 0.6900 | +0.0100 | yes | 0.6000 (+0.0900) | 0.7500 (-0.0600) |");
    tu_assert_contains(md, "| MRPC | 0.8000 | 0.7000 | +0.1000 | no | - | - |");
    tu_assert_contains(md, "Close to full fine-tuning on 1 of 2 task(s) (mean gap +0.0550). Beats the shuffled "
                           "control on 1 of 1. Beats the random control on 0 of 1.");
    /* Figure 3's curves: the supermasks over the pre-trained weights only. */
    char *f3p = fm_path_join(rd, "fig3.dat"), *f3 = NULL;
    size_t f3n;
    assert_int_equal(fm_read_file(f3p, &f3, &f3n), FM_OK);
    tu_assert_contains(f3, "\"RTE\"\n");
    tu_assert_contains(f3, " 0.690000 ");
    tu_assert_contains(f3, " 0.700000 ");
    assert_null(strstr(f3, " 0.600000 "));
    assert_null(strstr(f3, " 0.750000 "));
    free(f3);
    free(f3p);
    /* No head-only column without a freeze-all job (the table above); with
     * one, the column, "-" where a task has none, and the count. */
    assert_null(strstr(md, "head only"));
    free(md);
    json_decref(sci);
    fm_job_result ho[7] = {{0}};
    for (int i = 0; i < 6; i++) ho[i].rec = json_deep_copy(res[i].rec);
    ho[6].rec = rec(6, "RTE", "freeze", "all", 1, 0.65, 1);
    assert_int_equal(fm_report_write(dir, ho, 7, run), FM_OK);
    assert_int_equal(fm_json_read(sp, &sci), FM_OK);
    c = json_object_get(sci, "claims");
    t = json_object_get(c, "tasks");
    r0 = json_array_get(t, 0);
    assert_string_equal(json_string_value(json_object_get(r0, "task")), "RTE");
    assert_true(json_real_value(json_object_get(r0, "head_only")) == 0.65);
    assert_true(json_is_true(json_object_get(r0, "beats_head_only")));
    assert_null(json_object_get(json_array_get(t, 1), "head_only"));
    assert_int_equal(json_integer_value(json_object_get(c, "beats_head_only")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "head_only_tasks")), 1);
    assert_int_equal(fm_read_file(mp, &md, &mn), FM_OK);
    tu_assert_contains(md, "| task | full | supermask (s0) | gap | close | shuffled | random | head only |\n"
                           "|---|---|---|---|---|---|---|---|\n");
    tu_assert_contains(md, "| RTE | 0.7000 | 0.6900 | +0.0100 | yes | 0.6000 (+0.0900) | 0.7500 (-0.0600) | "
                           "0.6500 (+0.0400) |");
    tu_assert_contains(md, "| MRPC | 0.8000 | 0.7000 | +0.1000 | no | - | - | - |");
    tu_assert_contains(md, "Beats the random control on 0 of 1. Beats the head-only baseline on 1 of 1.");
    free(md);
    json_decref(sci);
    for (int i = 0; i < 7; i++) fm_result_free(&ho[i]);
    /* No full fine-tuning: no claims. */
    assert_int_equal(fm_report_write(dir, res + 1, 3, run), FM_OK);
    assert_int_equal(fm_json_read(sp, &sci), FM_OK);
    assert_null(json_object_get(sci, "claims"));
    json_decref(sci);
    json_decref(run);
    for (int i = 0; i < 6; i++) fm_result_free(&res[i]);
    free(sp);
    free(mp);
    free(rd);
    tu_rmtree(dir);
    free(dir);
}

/* RFC 4180 quoting (io/csv.h): a field with a comma, a double quote, a CR or
 * an LF is quoted with its quotes doubled; others are written as they are. */
static void test_csv_quoting(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fm_csv r = fm_csv_start(f);
    fm_csv_str(&r, "key");
    fm_csv_str(&r, "key,word_embeddings");
    fm_csv_str(&r, "say \"hi\"");
    fm_csv_str(&r, "two\nlines");
    fm_csv_str(&r, "cr\rhere");
    fm_csv_str(&r, NULL);
    fm_csv_str(&r, "");
    fm_csv_fmt(&r, "%.3f", 0.5);
    fm_csv_fmt(&r, "%d,%d", 1, 2);
    fm_csv_end(&r);
    static const char *const head[] = {"a", "b\"c"};
    fm_csv_row(f, 2, head);
    fclose(f);
    assert_string_equal(buf, "key,\"key,word_embeddings\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rhere\",,,0.500,\"1,2\"\n"
                             "a,\"b\"\"c\"\n");
    free(buf);
}

/* jobs/table3.ini's freeze sets (key | key,word_embeddings | deepest:2): the
 * variant with a comma is one quoted field of scores.csv and sparsity.csv,
 * and every record has as many fields as the header. With one seed, each
 * group's score is shown as "(n=1)", with no standard deviation (an empty
 * CSV field, null in science.json), not as "± 0.0000". */
static void test_report_csv_table3(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    fm_job_result res[4] = {{0}};
    res[0].rec = rec(0, "MRPC", "freeze", "key", 1, 0.80, 10);
    res[1].rec = rec(1, "MRPC", "freeze", "key,word_embeddings", 1, 0.75, 10);
    res[2].rec = rec(2, "MRPC", "freeze", "deepest:2", 1, 0.70, 10);
    res[3].rec = rec(3, "MRPC", "full", "", 1, 0.85, 10);
    json_object_set_new(res[1].rec, "name", json_string("MRPC.freeze.key_word_embeddings.seed1"));
    json_t *run = json_pack("{s:s, s:{s:i}, s:[{s:f, s:f, s:i}], s:f}", "name", "table3", "layout", "world_size", 1,
                            "teams", "busy_seconds", 5.0, "idle_seconds", 0.5, "jobs", 4, "wall_seconds", 30.0);
    assert_int_equal(fm_report_write(dir, res, 4, run), FM_OK);
    char *rd = fm_path_join(dir, "report"), *sp = fm_path_join(rd, "scores.csv");
    char *text = NULL;
    size_t n;
    assert_int_equal(fm_read_file(sp, &text, &n), FM_OK);
    tu_assert_contains(text, "\nMRPC,freeze,\"key,word_embeddings\",pretrained,1,0.750000,");
    tu_assert_contains(text, "\nMRPC,freeze,key,pretrained,1,0.800000,");
    /* fields per line, counting commas outside quotes */
    int head_fields = -1;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        int fields = 1, quoted = 0;
        for (char *p = line; p < end; p++) {
            if (*p == '"') quoted = !quoted;
            else if (*p == ',' && !quoted) fields++;
        }
        assert_false(quoted);
        if (head_fields < 0) head_fields = fields;
        assert_int_equal(fields, head_fields);
        line = end + 1;
    }
    assert_int_equal(head_fields, 11);
    free(text);
    free(sp);
    sp = fm_path_join(rd, "sparsity.csv");
    assert_int_equal(fm_read_file(sp, &text, &n), FM_OK);
    tu_assert_contains(text, "\nMRPC.freeze.key_word_embeddings.seed1,MRPC,freeze,\"key,word_embeddings\",1,0.750000,");
    free(text);
    free(sp);
    /* One seed per group: "(n=1)" and no std anywhere, not a spread of zero. */
    sp = fm_path_join(rd, "scores.csv");
    assert_int_equal(fm_read_file(sp, &text, &n), FM_OK);
    tu_assert_contains(text, "\nMRPC,full,,pretrained,1,0.850000,,,,0.8500,\n");
    free(text);
    free(sp);
    sp = fm_path_join(rd, "science.md");
    assert_int_equal(fm_read_file(sp, &text, &n), FM_OK);
    tu_assert_contains(text, "| MRPC | freeze | key,word_embeddings | pretrained | 1 | 0.7500 (n=1) |");
    assert_null(strstr(text, "± 0.0000"));
    free(text);
    free(sp);
    sp = fm_path_join(rd, "science.json");
    json_t *sci;
    assert_int_equal(fm_json_read(sp, &sci), FM_OK);
    json_t *g0 = json_array_get(json_object_get(sci, "groups"), 0);
    assert_int_equal(json_integer_value(json_object_get(g0, "jobs")), 1);
    assert_true(json_is_null(json_object_get(g0, "score_std")));
    json_decref(sci);
    free(sp);
    for (int i = 0; i < 4; i++) fm_result_free(&res[i]);
    json_decref(run);
    tu_rmtree(dir);
    free(rd);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_report_science),
        cmocka_unit_test(test_report_claims),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_report_csv_table3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
