/* report.c: job results, their wire format, and report/ (see report.h). */
#define _GNU_SOURCE
#include "report.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "csv.h"
#include "fileio.h"
#include "fm.h"
#include "runfiles.h"
#include "analysis.h"
#include "maskfile.h"

void fm_result_free(fm_job_result *r) {
    json_decref(r->rec);
    if (r->mask.t) fm_mask_free(&r->mask);
    memset(r, 0, sizeof *r);
}

static void put(unsigned char **buf, size_t *len, const void *p, size_t n) {
    *buf = fm_xrealloc(*buf, *len + n + 1);
    memcpy(*buf + *len, p, n);
    *len += n;
}

static int has_bits(const fm_mask *m) { return m->n > 0 && m->t[0].bits != NULL; }

size_t fm_result_bits_bytes(const fm_job_result *r) {
    size_t n = 0;
    for (int i = 0; i < r->mask.n; i++) n += (r->mask.t[i].numel + 7) / 8;
    return n;
}

void fm_result_drop_bits(fm_job_result *r) {
    for (int i = 0; i < r->mask.n; i++) {
        free(r->mask.t[i].bits);
        r->mask.t[i].bits = NULL;
    }
}

void fm_result_pack(const fm_job_result *r, int with_bits, unsigned char **buf, size_t *len) {
    char *js = json_dumps(r->rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    uint64_t jl = strlen(js);
    put(buf, len, &jl, 8);
    put(buf, len, js, jl);
    free(js);
    uint32_t nt = (uint32_t)r->mask.n, bits = with_bits && has_bits(&r->mask);
    put(buf, len, &nt, 4);
    put(buf, len, &bits, 4);
    for (int i = 0; i < r->mask.n; i++) {
        const fm_mask_tensor *t = &r->mask.t[i];
        uint32_t nd = (uint32_t)t->ndim;
        uint64_t numel = t->numel, ones = t->ones;
        put(buf, len, t->name, sizeof t->name);
        put(buf, len, &nd, 4);
        put(buf, len, t->shape, 16);
        put(buf, len, &numel, 8);
        put(buf, len, &ones, 8);
        if (bits) put(buf, len, t->bits, (t->numel + 7) / 8);
    }
}

static int get(const unsigned char *buf, size_t len, size_t *pos, void *out, size_t n) {
    if (len - *pos < n) return fm_fail("gathered job result: truncated after %zu bytes", *pos);
    memcpy(out, buf + *pos, n);
    *pos += n;
    return FM_OK;
}

int fm_result_unpack(fm_job_result *r, const unsigned char *buf, size_t len, size_t *used) {
    memset(r, 0, sizeof *r);
    size_t pos = 0;
    uint64_t jl = 0;
    if (get(buf, len, &pos, &jl, 8) != FM_OK) return FM_ERR;
    if (jl > len - pos) return fm_fail("gathered job result: JSON of %" PRIu64 " bytes overruns the record", jl);
    json_error_t e;
    r->rec = json_loadb((const char *)buf + pos, (size_t)jl, 0, &e);
    if (!r->rec) return fm_fail("gathered job result: %s", e.text);
    pos += jl;
    uint32_t nt = 0, bits = 0;
    if (get(buf, len, &pos, &nt, 4) != FM_OK || get(buf, len, &pos, &bits, 4) != FM_OK) goto bad;
    if (bits > 1) {
        fm_fail("gathered job result: bad bits flag %u", bits);
        goto bad;
    }
    if (nt > len - pos) {
        fm_fail("gathered job result: %u mask tensors overrun the record", nt);
        goto bad;
    }
    if (nt) {
        r->mask.t = fm_xcalloc(nt, sizeof(fm_mask_tensor));
        r->mask.n = (int)nt;
    }
    for (uint32_t i = 0; i < nt; i++) {
        fm_mask_tensor *t = &r->mask.t[i];
        uint32_t nd = 0;
        uint64_t numel = 0, ones = 0;
        if (get(buf, len, &pos, t->name, sizeof t->name) != FM_OK || get(buf, len, &pos, &nd, 4) != FM_OK ||
            get(buf, len, &pos, t->shape, 16) != FM_OK || get(buf, len, &pos, &numel, 8) != FM_OK ||
            get(buf, len, &pos, &ones, 8) != FM_OK)
            goto bad;
        t->name[sizeof t->name - 1] = 0;
        t->ndim = (int)nd;
        t->numel = (size_t)numel;
        t->ones = (size_t)ones;
        size_t nb = (t->numel + 7) / 8;
        if (!bits) continue;
        if (nb > len - pos) {
            fm_fail("gathered job result: mask tensor %s overruns the record", t->name);
            goto bad;
        }
        t->bits = fm_xmalloc(nb ? nb : 1);
        memcpy(t->bits, buf + pos, nb);
        pos += nb;
    }
    *used = pos;
    return FM_OK;
bad:
    fm_result_free(r);
    return FM_ERR;
}

int fm_run_mask_read(const char *job_dir, fm_mask *m) {
    memset(m, 0, sizeof *m);
    char *path = fm_path_join(job_dir, "mask.safetensors");
    int rc = FM_OK;
    if (fm_file_exists(path)) {
        fm_maskfile_meta meta;
        rc = fm_maskfile_read(path, m, &meta, NULL, NULL, NULL);
        if (rc == FM_OK) fm_maskfile_meta_free(&meta);
        else memset(m, 0, sizeof *m);
    }
    free(path);
    return rc;
}

/* ---- the report ---- */

static const char *sget(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}
static double nget(const json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int by_index(const void *a, const void *b) {
    const fm_job_result *x = a, *y = b;
    return (int)(json_integer_value(json_object_get(x->rec, "index")) -
                 json_integer_value(json_object_get(y->rec, "index")));
}

static size_t mask_numel(const fm_mask *m, size_t *ones) {
    size_t n = 0, o = 0;
    for (int i = 0; i < m->n; i++) n += m->t[i].numel, o += m->t[i].ones;
    if (ones) *ones = o;
    return n;
}

/* Same mode, variant and weights. */
static int same_family(const json_t *a, const json_t *b) {
    return !strcmp(sget(a, "mode"), sget(b, "mode")) && !strcmp(sget(a, "variant"), sget(b, "variant")) &&
           !strcmp(sget(a, "weights"), sget(b, "weights"));
}

/* The fraction of a's zeros that are zeros in b too, counted on the packed
 * bits, and what independent random masks of the same per-tensor sparsities
 * give (analysis.h's frac_a and expect_a over all tensors); 0 when a has no
 * zeros, NaN when the masks cover different tensors. */
static void overlap_pair(const fm_mask *a, const fm_mask *b, double *frac, double *rnd) {
    fm_overlap o;
    if (fm_mask_overlap(&o, a, b) != FM_OK) {
        *frac = *rnd = NAN;
        return;
    }
    *frac = isnan(o.all.frac_a) ? 0 : o.all.frac_a;
    *rnd = isnan(o.all.expect_a) ? 0 : o.all.expect_a;
    fm_overlap_free(&o);
}

/* Give r's mask its bits when it came without them (fm_job_result): read
 * RUN_DIR/NAME/mask.safetensors, which must hold the tensors and counts r
 * states. *loaded = 1 when read here (release_bits frees them again). */
static int ensure_bits(const char *run_dir, fm_job_result *r, int *loaded) {
    *loaded = 0;
    if (!r->mask.n || r->mask.t[0].bits) return FM_OK;
    const char *name = json_string_value(json_object_get(r->rec, "name"));
    char *jd = fm_path_join(run_dir, name ? name : "?");
    fm_mask m;
    int rc = fm_run_mask_read(jd, &m);
    if (rc == FM_OK && m.n != r->mask.n)
        rc = fm_fail("%s/mask.safetensors: %d mask tensors, but the job ended with %d; was the file replaced?", jd,
                     m.n, r->mask.n);
    for (int i = 0; rc == FM_OK && i < m.n; i++) {
        const fm_mask_tensor *a = &m.t[i], *b = &r->mask.t[i];
        if (strcmp(a->name, b->name) || a->numel != b->numel || a->ones != b->ones)
            rc = fm_fail("%s/mask.safetensors: tensor %s has %zu of %zu entries kept, but the job ended with %s "
                         "keeping %zu of %zu; was the file replaced?",
                         jd, a->name, a->ones, a->numel, b->name, b->ones, b->numel);
    }
    if (rc == FM_OK) {
        for (int i = 0; i < m.n; i++) {
            r->mask.t[i].bits = m.t[i].bits;
            m.t[i].bits = NULL;
        }
        *loaded = 1;
    }
    fm_mask_free(&m);
    free(jd);
    return rc;
}

/* Read the bits of res[idx[0..k)] that came without them (loaded[j] says
 * which); on failure none stays loaded. */
static void release_bits(fm_job_result *res, const int *idx, int k, const int *loaded) {
    for (int j = 0; j < k; j++)
        if (loaded[j]) fm_result_drop_bits(&res[idx[j]]);
}
static int load_bits(const char *run_dir, fm_job_result *res, const int *idx, int k, int *loaded) {
    memset(loaded, 0, sizeof(int) * (size_t)k);
    for (int j = 0; j < k; j++)
        if (ensure_bits(run_dir, &res[idx[j]], &loaded[j]) != FM_OK) {
            release_bits(res, idx, k, loaded);
            return FM_ERR;
        }
    return FM_OK;
}

/* A group of Figure 3's curves: supermasks over the pre-trained weights. */
static int fig3_group(const json_t *g) {
    return !strcmp(sget(g, "mode"), "supermask") && !strcmp(sget(g, "weights"), "pretrained");
}

/* Group key: task|mode|variant|weights. */
static void group_key(char *out, size_t cap, const json_t *rec) {
    snprintf(out, cap, "%s|%s|%s|%s", sget(rec, "task"), sget(rec, "mode"), sget(rec, "variant"),
             sget(rec, "weights"));
}

/* JSON has no NaN: a value that is not finite is written as null. */
static json_t *num_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static int write_text(const char *dir, const char *name, char *text, size_t len) {
    char *p = fm_path_join(dir, name);
    int rc = fm_write_file_atomic(p, text, len);
    free(p);
    return rc;
}

static int write_json(const char *dir, const char *name, json_t *o) {
    char *p = fm_path_join(dir, name);
    int rc = fm_json_write(p, o);
    free(p);
    return rc;
}

/* Encoder layer of a tensor name ("encoder.layer.7.…" -> 7), else -1. */
static int layer_of(const char *name) {
    int l;
    return sscanf(name, "encoder.layer.%d.", &l) == 1 ? l : -1;
}

static int run_gnuplot(const char *dir, const char *script) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) return 0;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot '%s' >/dev/null 2>&1", dir, script);
    int rc = system(cmd);
    return rc == 0;
}

/* A figure: data and script to dir/NAME.dat, NAME.gp, then PNG and SVG. */
static int figure(const char *dir, const char *name, char *dat, size_t datn, const char *body, json_t *notes) {
    char fn[64], gp[4096];
    snprintf(fn, sizeof fn, "%s.dat", name);
    if (write_text(dir, fn, dat, datn) != FM_OK) return FM_ERR;
    snprintf(gp, sizeof gp,
             "set terminal png size 900,600\nset output '%s.png'\n%s\n"
             "set terminal svg size 900,600\nset output '%s.svg'\nreplot\n",
             name, body, name);
    snprintf(fn, sizeof fn, "%s.gp", name);
    if (write_text(dir, fn, gp, strlen(gp)) != FM_OK) return FM_ERR;
    if (!run_gnuplot(dir, fn)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: gnuplot absent or failed; %s.dat and %s.gp are written", name, name, name);
        json_array_append_new(notes, json_string(msg));
    }
    return FM_OK;
}

/* The group of (task, mode, variant, weights) in groups, or NULL; variant NULL
 * matches the first group of that task, mode and weights. */
static json_t *find_group(json_t *groups, const char *task, const char *mode, const char *variant,
                          const char *weights) {
    for (size_t i = 0; i < json_array_size(groups); i++) {
        json_t *g = json_array_get(groups, i);
        if (!strcmp(sget(g, "task"), task) && !strcmp(sget(g, "mode"), mode) && !strcmp(sget(g, "weights"), weights) &&
            (!variant || !strcmp(sget(g, "variant"), variant)))
            return g;
    }
    return NULL;
}

/* A supermask is "close" to full fine-tuning when it is at most this far
 * below it (the paper's supermasks are within about two points). */
#define FM_CLAIM_CLOSE 0.02

/* One control of the claims: when group g exists, its score goes into r[key]
 * and whether the supermask's score s beats it into r["beats_" key], they are
 * counted (*n controls, *b beaten), and cell gets "score (s - score)";
 * otherwise cell keeps "-". */
static void against(json_t *r, json_t *g, double s, const char *key, int *n, int *b, char *cell, size_t cap) {
    snprintf(cell, cap, "-");
    if (!g) return;
    double x = nget(g, "score_mean");
    char beats[32];
    snprintf(beats, sizeof beats, "beats_%s", key);
    json_object_set_new(r, key, json_real(x));
    json_object_set_new(r, beats, json_boolean(s > x));
    (*n)++, *b += s > x;
    snprintf(cell, cap, "%.4f (%+.4f)", x, s - x);
}

/* The paper's claims as measured, when the sweep has the conditions: per
 * task with full fine-tuning and a supermask over the pre-trained weights,
 * the gap (full - supermask), and against supermasks of the same variant
 * over shuffled and over random weights whether the pre-trained one scores
 * higher, and (when the sweep has the freeze set "all") whether it beats the
 * head-only baseline. Appends "## Claims as measured" to m; returns the JSON
 * (NULL when no task has both full and supermask over pre-trained weights). */
static json_t *claims(json_t *groups, FILE *m) {
    json_t *rows = json_array();
    int close = 0, nsh = 0, bsh = 0, nrd = 0, brd = 0, nho = 0, bho = 0;
    double gaps = 0;
    int any_head = 0; /* a head-only column (sweeps without one keep their table as it was) */
    for (size_t i = 0; i < json_array_size(groups); i++)
        any_head |= find_group(groups, sget(json_array_get(groups, i), "task"), "freeze", "all", "pretrained") != NULL;
    for (size_t i = 0; i < json_array_size(groups); i++) {
        json_t *g = json_array_get(groups, i);
        const char *task = sget(g, "task");
        if (strcmp(sget(g, "mode"), "full") || strcmp(sget(g, "weights"), "pretrained")) continue;
        json_t *sm = find_group(groups, task, "supermask", NULL, "pretrained");
        if (!sm) continue;
        const char *var = sget(sm, "variant");
        json_t *sh = find_group(groups, task, "supermask", var, "shuffled");
        json_t *rd = find_group(groups, task, "supermask", var, "random");
        json_t *ho = find_group(groups, task, "freeze", "all", "pretrained");
        double f = nget(g, "score_mean"), s = nget(sm, "score_mean"), gap = f - s;
        json_t *r = json_object();
        json_object_set_new(r, "task", json_string(task));
        json_object_set_new(r, "variant", json_string(var));
        json_object_set_new(r, "full", json_real(f));
        json_object_set_new(r, "supermask", json_real(s));
        json_object_set_new(r, "gap", json_real(gap));
        json_object_set_new(r, "close", json_boolean(gap <= FM_CLAIM_CLOSE));
        close += gap <= FM_CLAIM_CLOSE;
        gaps += gap;
        char shs[48], rds[48], hos[48], hocol[56] = "";
        against(r, sh, s, "shuffled", &nsh, &bsh, shs, sizeof shs);
        against(r, rd, s, "random", &nrd, &brd, rds, sizeof rds);
        against(r, ho, s, "head_only", &nho, &bho, hos, sizeof hos);
        if (any_head) snprintf(hocol, sizeof hocol, " %s |", hos);
        if (!json_array_size(rows))
            fprintf(m, "\n## Claims as measured\n\n"
                       "Does a supermask over the pre-trained weights come close to full fine-tuning (gap = full - "
                       "supermask; close: at most %.2f), and does it beat supermasks over the same weights shuffled "
                       "within each tensor and over random weights%s (their score, and in brackets how far the "
                       "pre-trained supermask is above it)?\n\n"
                       "| task | full | supermask (%s) | gap | close | shuffled | random |%s\n|---|---|---|---|---|---|---|%s\n",
                    FM_CLAIM_CLOSE, any_head ? ", and training the task head alone over frozen pre-trained weights" : "",
                    var, any_head ? " head only |" : "", any_head ? "---|" : "");
        fprintf(m, "| %s | %.4f | %.4f | %+.4f | %s | %s | %s |%s\n", task, f, s, gap,
                gap <= FM_CLAIM_CLOSE ? "yes" : "no", shs, rds, hocol);
        json_array_append_new(rows, r);
    }
    size_t nt = json_array_size(rows);
    if (!nt) {
        json_decref(rows);
        return NULL;
    }
    json_t *c = json_object();
    json_object_set_new(c, "tasks", rows);
    json_object_set_new(c, "close_threshold", json_real(FM_CLAIM_CLOSE));
    json_object_set_new(c, "close", json_integer(close));
    json_object_set_new(c, "mean_gap", json_real(gaps / (double)nt));
    fprintf(m, "\nClose to full fine-tuning on %d of %zu task(s) (mean gap %+.4f).", close, nt, gaps / (double)nt);
    if (nsh) {
        json_object_set_new(c, "beats_shuffled", json_integer(bsh));
        json_object_set_new(c, "shuffled_tasks", json_integer(nsh));
        fprintf(m, " Beats the shuffled control on %d of %d.", bsh, nsh);
    }
    if (nrd) {
        json_object_set_new(c, "beats_random", json_integer(brd));
        json_object_set_new(c, "random_tasks", json_integer(nrd));
        fprintf(m, " Beats the random control on %d of %d.", brd, nrd);
    }
    if (nho) {
        json_object_set_new(c, "beats_head_only", json_integer(bho));
        json_object_set_new(c, "head_only_tasks", json_integer(nho));
        fprintf(m, " Beats the head-only baseline on %d of %d.", bho, nho);
    }
    fprintf(m, "\n");
    return c;
}

int fm_report_write(const char *run_dir, fm_job_result *res, int n, const json_t *run) {
    qsort(res, (size_t)n, sizeof *res, by_index);
    char *dir = fm_path_join(run_dir, "report");
    if (fm_mkdirs(dir) != FM_OK) {
        free(dir);
        return FM_ERR;
    }
    int rc = FM_ERR;
    json_t *sci = json_object(), *jobs = json_array(), *groups = json_array(), *layers = json_object(),
           *overlap = json_array(), *failed = json_array(), *notes = json_array();
    json_object_set_new(sci, "name", json_string(sget(run, "name")));
    char *md = NULL, *csv = NULL, *f6 = NULL;
    int *done = NULL, *pick = NULL;
    size_t mdn = 0, csvn = 0;
    FILE *m = open_memstream(&md, &mdn);
    fprintf(m, "# finemask report: %s\n\n", sget(run, "name"));

    /* Jobs. */
    for (int i = 0; i < n; i++) {
        const json_t *r = res[i].rec, *met = json_object_get(r, "metrics");
        json_t *j = json_object();
        const char *keys[] = {"name", "task", "mode", "variant", "weights", "status"};
        for (size_t k = 0; k < 6; k++) json_object_set_new(j, keys[k], json_string(sget(r, keys[k])));
        json_object_set_new(j, "seed", json_integer(json_integer_value(json_object_get(r, "seed"))));
        json_object_set_new(j, "init_sparsity", json_real(nget(r, "sparsity")));
        if (strcmp(sget(r, "status"), "done")) { /* failed, interrupted or not run */
            json_object_set_new(j, "error", json_string(sget(r, "error")));
            json_array_append(failed, j);
        } else {
            json_object_set_new(j, "score", json_real(nget(met, "score")));
            json_object_set_new(j, "score_name", json_string(sget(met, "score_name")));
            /* supermask: the scores of the Bernoulli samples of the mask */
            json_t *smp = json_object_get(met, "score_samples");
            if (json_is_array(smp)) {
                json_object_set(j, "score_samples", smp);
                json_object_set_new(j, "score_samples_mean", num_or_null(nget(met, "score_samples_mean")));
                json_object_set_new(j, "score_samples_std", num_or_null(nget(met, "score_samples_std")));
            }
            double ts = nget(met, "task_storage_bytes");
            if (!isnan(ts)) json_object_set_new(j, "task_storage_bytes", json_integer((json_int_t)ts));
            size_t ones, tot = mask_numel(&res[i].mask, &ones);
            if (tot) {
                json_object_set_new(j, "final_sparsity", json_real(1.0 - (double)ones / (double)tot));
                json_t *ls = json_object();
                for (int t = 0; t < res[i].mask.n; t++) {
                    const fm_mask_tensor *mt = &res[i].mask.t[t];
                    json_object_set_new(ls, mt->name, json_real(1.0 - (double)mt->ones / (double)mt->numel));
                }
                json_object_set_new(layers, sget(r, "name"), ls);
            } else if (!isnan(nget(met, "sparsity"))) {
                json_object_set_new(j, "final_sparsity", json_real(nget(met, "sparsity")));
            }
        }
        json_array_append_new(jobs, j);
    }

    /* Groups: mean and std over seeds, beside the task's full baseline. */
    done = fm_xcalloc((size_t)(n ? n : 1), sizeof(int));
    FILE *c = open_memstream(&csv, &csvn);
    {
        static const char *const head[] = {"task",         "mode",        "variant",       "weights",
                                           "jobs",         "score_mean",  "score_std",     "samples_mean",
                                           "samples_std",  "baseline_mean", "final_sparsity_mean"};
        fm_csv_row(c, 11, head);
    }
    fprintf(m, "## Scores\n\nMean ± standard deviation over seeds of the dev score (supermasks: of the "
               "deterministic mask), and over every Bernoulli sample of every seed's mask (their count in "
               "brackets); \"(n=1)\": a single value, with no spread to show; the baseline is full fine-tuning "
               "from the pre-trained weights.\n\n"
               "| task | mode | variant | weights | jobs | score | samples | baseline | final sparsity |\n"
               "|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        json_t *ji = json_array_get(jobs, (size_t)i);
        if (done[i] || strcmp(sget(ji, "status"), "done")) continue;
        char key[512], k2[512];
        group_key(key, sizeof key, ji);
        double s = 0, s2 = 0, sp = 0, q = 0, q2 = 0;
        int qn = 0;
        int cnt = 0, spn = 0;
        for (int k = i; k < n; k++) {
            json_t *jk = json_array_get(jobs, (size_t)k);
            if (done[k] || strcmp(sget(jk, "status"), "done")) continue;
            group_key(k2, sizeof k2, jk);
            if (strcmp(key, k2)) continue;
            done[k] = 1;
            double v = nget(jk, "score");
            s += v, s2 += v * v, cnt++;
            if (!isnan(nget(jk, "final_sparsity"))) sp += nget(jk, "final_sparsity"), spn++;
            json_t *smp = json_object_get(jk, "score_samples");
            for (size_t e = 0; e < json_array_size(smp); e++) {
                double x = json_number_value(json_array_get(smp, e));
                q += x, q2 += x * x, qn++;
            }
        }
        double mean = s / cnt, sd = cnt > 1 ? sqrt(fmax(0, (s2 - cnt * mean * mean) / (cnt - 1))) : 0;
        /* the baseline: full / pretrained of the same task */
        double bs = 0;
        int bn = 0;
        for (int k = 0; k < n; k++) {
            json_t *jk = json_array_get(jobs, (size_t)k);
            if (!strcmp(sget(jk, "status"), "done") && !strcmp(sget(jk, "task"), sget(ji, "task")) &&
                !strcmp(sget(jk, "mode"), "full") && !strcmp(sget(jk, "weights"), "pretrained"))
                bs += nget(jk, "score"), bn++;
        }
        json_t *g = json_object();
        json_object_set_new(g, "task", json_string(sget(ji, "task")));
        json_object_set_new(g, "mode", json_string(sget(ji, "mode")));
        json_object_set_new(g, "variant", json_string(sget(ji, "variant")));
        json_object_set_new(g, "weights", json_string(sget(ji, "weights")));
        json_object_set_new(g, "jobs", json_integer(cnt));
        json_object_set_new(g, "score_mean", json_real(mean));
        json_object_set_new(g, "score_std", cnt > 1 ? json_real(sd) : json_null()); /* one job: no spread */
        if (qn) {
            /* every Bernoulli sample of every seed's mask pooled */
            double qm = q / qn, qs = qn > 1 ? sqrt(fmax(0, (q2 - qn * qm * qm) / (qn - 1))) : 0;
            json_object_set_new(g, "samples", json_integer(qn));
            json_object_set_new(g, "samples_mean", json_real(qm));
            json_object_set_new(g, "samples_std", qn > 1 ? json_real(qs) : json_null());
        }
        if (bn) json_object_set_new(g, "baseline_mean", json_real(bs / bn));
        if (spn) json_object_set_new(g, "final_sparsity_mean", json_real(sp / spn));
        json_array_append_new(groups, g);
        /* A mean over one value has no spread: "(n=1)", not "± 0.0000"; its std field stays empty. */
        char bl[32] = "", fs[32] = "", qs[64] = "", ss[64];
        if (bn) snprintf(bl, sizeof bl, "%.4f", bs / bn);
        if (spn) snprintf(fs, sizeof fs, "%.4f", sp / spn);
        double qm = qn ? q / qn : 0, qd = qn > 1 ? json_real_value(json_object_get(g, "samples_std")) : 0;
        if (qn > 1) snprintf(qs, sizeof qs, "%.4f ± %.4f (%d)", qm, qd, qn);
        else if (qn == 1) snprintf(qs, sizeof qs, "%.4f (n=1)", qm);
        if (cnt > 1) snprintf(ss, sizeof ss, "%.4f ± %.4f", mean, sd);
        else snprintf(ss, sizeof ss, "%.4f (n=1)", mean);
        fm_csv r = fm_csv_start(c);
        fm_csv_str(&r, sget(ji, "task"));
        fm_csv_str(&r, sget(ji, "mode"));
        fm_csv_str(&r, sget(ji, "variant"));
        fm_csv_str(&r, sget(ji, "weights"));
        fm_csv_fmt(&r, "%d", cnt);
        fm_csv_fmt(&r, "%.6f", mean);
        if (cnt > 1) fm_csv_fmt(&r, "%.6f", sd);
        else fm_csv_str(&r, NULL);
        if (qn) fm_csv_fmt(&r, "%.6f", qm);
        else fm_csv_str(&r, NULL);
        if (qn > 1) fm_csv_fmt(&r, "%.6f", qd);
        else fm_csv_str(&r, NULL);
        fm_csv_str(&r, bl);
        fm_csv_str(&r, fs);
        fm_csv_end(&r);
        fprintf(m, "| %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", sget(ji, "task"), sget(ji, "mode"),
                sget(ji, "variant"), sget(ji, "weights"), cnt, ss, qn ? qs : "-", bn ? bl : "-", spn ? fs : "-");
    }
    fclose(c);
    {
        json_t *cl = claims(groups, m);
        if (cl) json_object_set_new(sci, "claims", cl);
    }
    if (write_text(dir, "scores.csv", csv, csvn) != FM_OK) goto out;
    free(csv);
    csv = NULL;

    /* Per job: final sparsity, storage; per tensor sparsity. */
    c = open_memstream(&csv, &csvn);
    {
        static const char *const head[] = {"job",   "task",           "mode",              "variant",
                                           "seed",  "score",          "final_sparsity",    "task_storage_bytes"};
        fm_csv_row(c, 8, head);
    }
    fprintf(m, "\n## Jobs\n\n| job | score | final sparsity | task storage (bytes) |\n|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        json_t *j = json_array_get(jobs, (size_t)i);
        if (strcmp(sget(j, "status"), "done")) continue;
        double fsp = nget(j, "final_sparsity"), ts = nget(j, "task_storage_bytes");
        char fs[32] = "", tss[32] = "";
        if (!isnan(fsp)) snprintf(fs, sizeof fs, "%.6f", fsp);
        if (!isnan(ts)) snprintf(tss, sizeof tss, "%.0f", ts);
        fm_csv r = fm_csv_start(c);
        fm_csv_str(&r, sget(j, "name"));
        fm_csv_str(&r, sget(j, "task"));
        fm_csv_str(&r, sget(j, "mode"));
        fm_csv_str(&r, sget(j, "variant"));
        fm_csv_fmt(&r, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(j, "seed")));
        fm_csv_fmt(&r, "%.6f", nget(j, "score"));
        fm_csv_str(&r, fs);
        fm_csv_str(&r, tss);
        fm_csv_end(&r);
        fprintf(m, "| %s | %.4f | %s | %s |\n", sget(j, "name"), nget(j, "score"), isnan(fsp) ? "-" : fs,
                isnan(ts) ? "-" : tss);
    }
    fclose(c);
    if (write_text(dir, "sparsity.csv", csv, csvn) != FM_OK) goto out;
    free(csv);
    csv = NULL;
    c = open_memstream(&csv, &csvn);
    {
        static const char *const head[] = {"job", "tensor", "layer", "numel", "ones", "sparsity"};
        fm_csv_row(c, 6, head);
    }
    for (int i = 0; i < n; i++)
        for (int t = 0; t < res[i].mask.n; t++) {
            const fm_mask_tensor *mt = &res[i].mask.t[t];
            fm_csv r = fm_csv_start(c);
            fm_csv_str(&r, sget(res[i].rec, "name"));
            fm_csv_str(&r, mt->name);
            fm_csv_fmt(&r, "%d", layer_of(mt->name));
            fm_csv_fmt(&r, "%zu", mt->numel);
            fm_csv_fmt(&r, "%zu", mt->ones);
            fm_csv_fmt(&r, "%.6f", 1.0 - (double)mt->ones / (double)mt->numel);
            fm_csv_end(&r);
        }
    fclose(c);
    if (write_text(dir, "layer_sparsity.csv", csv, csvn) != FM_OK) goto out;
    free(csv);
    csv = NULL;

    /* Overlaps: per family (mode, variant, weights) with masks of two tasks or
     * more, each task's first (lowest index) job. The figures use the family
     * with the most zeros. */
    pick = fm_xcalloc((size_t)(n ? n : 1), sizeof(int));
    int np = 0;
    int *loaded = fm_xcalloc((size_t)(n ? n : 1), sizeof(int));
    int lrc = FM_OK;
    {
        int *cand = fm_xcalloc((size_t)(n ? n : 1), sizeof(int));
        size_t best = 0;
        int have_best = 0;
        c = open_memstream(&csv, &csvn);
        {
            static const char *const head[] = {"family", "task_a", "task_b", "shared_zero_fraction", "random"};
            fm_csv_row(c, 5, head);
        }
        for (int f = 0; f < n; f++) {
            if (!res[f].mask.n) continue;
            int seen = 0;
            for (int k = 0; k < f && !seen; k++) seen = res[k].mask.n && same_family(res[k].rec, res[f].rec);
            if (seen) continue;
            int nc = 0;
            size_t zeros = 0;
            for (int i = f; i < n; i++) {
                if (!res[i].mask.n || !same_family(res[f].rec, res[i].rec)) continue;
                int dup = 0;
                for (int k = 0; k < nc; k++) dup |= !strcmp(sget(res[cand[k]].rec, "task"), sget(res[i].rec, "task"));
                if (dup) continue;
                cand[nc++] = i;
                size_t ones, tot = mask_numel(&res[i].mask, &ones);
                zeros += tot - ones;
            }
            if (!have_best || zeros > best) {
                memcpy(pick, cand, sizeof(int) * (size_t)nc);
                np = nc;
                best = zeros;
                have_best = 1;
            }
            if (nc < 2) continue;
            /* the family's masks, one per task, read now if they came without bits */
            if ((lrc = load_bits(run_dir, res, cand, nc, loaded)) != FM_OK) break;
            char fam[400];
            snprintf(fam, sizeof fam, "%s %s %s", sget(res[f].rec, "mode"), sget(res[f].rec, "variant"),
                     sget(res[f].rec, "weights"));
            fprintf(m, "\n## Mask overlap: %s\n\nFraction of task A's zeros that are zeros in task B's mask too, "
                       "and in brackets what independent random masks of the same sparsities give.\n\n| A \\ B |",
                    fam);
            for (int k = 0; k < nc; k++) fprintf(m, " %s |", sget(res[cand[k]].rec, "task"));
            fprintf(m, "\n|---|");
            for (int k = 0; k < nc; k++) fprintf(m, "---|");
            fprintf(m, "\n");
            for (int x = 0; x < nc; x++) {
                fprintf(m, "| %s |", sget(res[cand[x]].rec, "task"));
                for (int y = 0; y < nc; y++) {
                    double frac, rnd;
                    overlap_pair(&res[cand[x]].mask, &res[cand[y]].mask, &frac, &rnd);
                    fprintf(m, " %.4f (%.4f) |", frac, rnd);
                    if (x == y) continue;
                    json_t *o = json_object();
                    json_object_set_new(o, "family", json_string(fam));
                    json_object_set_new(o, "a", json_string(sget(res[cand[x]].rec, "task")));
                    json_object_set_new(o, "b", json_string(sget(res[cand[y]].rec, "task")));
                    json_object_set_new(o, "shared_zero_fraction", json_real(frac));
                    json_object_set_new(o, "random", json_real(rnd));
                    json_array_append_new(overlap, o);
                    fm_csv r = fm_csv_start(c);
                    fm_csv_str(&r, fam);
                    fm_csv_str(&r, sget(res[cand[x]].rec, "task"));
                    fm_csv_str(&r, sget(res[cand[y]].rec, "task"));
                    fm_csv_fmt(&r, "%.6f", frac);
                    fm_csv_fmt(&r, "%.6f", rnd);
                    fm_csv_end(&r);
                }
                fprintf(m, "\n");
            }
            release_bits(res, cand, nc, loaded);
        }
        free(cand);
        fclose(c);
        if (lrc != FM_OK || write_text(dir, "overlap.csv", csv, csvn) != FM_OK) {
            free(loaded);
            goto out;
        }
        free(csv);
        csv = NULL;
    }
    size_t f6n = 0;
    {
        if (load_bits(run_dir, res, pick, np, loaded) != FM_OK) {
            free(loaded);
            goto out;
        }
        FILE *d6 = open_memstream(&f6, &f6n);
        for (int x = 0; x < np; x++) {
            for (int y = 0; y < np; y++) {
                double frac, rnd;
                overlap_pair(&res[pick[x]].mask, &res[pick[y]].mask, &frac, &rnd);
                fprintf(d6, "%.6f ", frac);
            }
            fprintf(d6, "\n");
        }
        fclose(d6);
        release_bits(res, pick, np, loaded);
        free(loaded);
    }
    if (json_array_size(failed)) {
        fprintf(m, "\n## Failed jobs\n\n");
        for (size_t i = 0; i < json_array_size(failed); i++) {
            json_t *f = json_array_get(failed, i);
            fprintf(m, "- %s: %s\n", sget(f, "name"), sget(f, "error"));
        }
    }
    json_object_set_new(sci, "jobs", jobs);
    json_object_set_new(sci, "groups", groups);
    json_object_set_new(sci, "layer_sparsity", layers);
    json_object_set_new(sci, "overlap", overlap);
    json_object_set_new(sci, "failed", failed);
    jobs = groups = layers = overlap = failed = NULL;

    /* Distances from the pre-trained weights (full and freeze jobs): overall,
     * and per encoder layer the mean over its matrices, beside two random
     * initialisations (uniform) of the same shapes. */
    json_t *dist = json_object();
    for (int i = 0; i < n; i++) {
        json_t *d = json_object_get(res[i].rec, "distance");
        if (!d) continue;
        if (!json_object_size(dist))
            fprintf(m, "\n## Distances from the pre-trained weights\n\nOver every weight matrix: L1 of the difference "
                       "and angular distance arccos(cos)/pi, beside two independent uniform random initialisations of "
                       "the same shapes.\n\n| job | L1 | angular | random angular |\n|---|---|---|---|\n");
        json_t *all = json_object_get(d, "all");
        json_t *o = json_object(), *lays = json_array();
        double l1 = nget(json_object_get(all, "ab"), "l1"), ang = nget(json_object_get(all, "ab"), "angular");
        double rang = nget(json_object_get(all, "uniform_pair"), "angular");
        json_object_set_new(o, "l1", json_real(l1));
        json_object_set_new(o, "angular", json_real(ang));
        json_object_set_new(o, "random_angular", json_real(rang));
        fprintf(m, "| %s | %.6g | %.6f | %.6f |\n", sget(res[i].rec, "name"), l1, ang, rang);
        json_t *rows = json_object_get(d, "tensors");
        for (int l = -1; l < 1024; l++) {
            double a = 0, r = 0, l1m = 0;
            int k = 0;
            for (size_t t = 0; t < json_array_size(rows); t++) {
                json_t *row = json_array_get(rows, t), *ly = json_object_get(row, "layer");
                if (!json_is_integer(ly) || json_integer_value(ly) != l) continue;
                a += nget(json_object_get(row, "ab"), "angular");
                r += nget(json_object_get(row, "uniform_pair"), "angular");
                l1m += nget(json_object_get(row, "ab"), "l1_mean");
                k++;
            }
            if (!k) {
                if (l >= 0) break;
                continue;
            }
            json_array_append_new(lays, json_pack("{s:i, s:i, s:f, s:f, s:f}", "layer", l, "matrices", k, "angular",
                                                  a / k, "random_angular", r / k, "l1_mean", l1m / k));
        }
        json_object_set_new(o, "layers", lays);
        json_object_set_new(dist, sget(res[i].rec, "name"), o);
    }
    json_object_set_new(sci, "distances", dist);

    /* Figures (science; gnuplot output is not compared). */
    {
        /* Figure 3: score against sparsity, a line per task, over the
         * pre-trained weights only (the shuffled and random controls are
         * other curves, not points of this one). */
        char *dat = NULL;
        size_t datn = 0;
        FILE *d = open_memstream(&dat, &datn);
        int blocks = 0;
        json_t *gs = json_object_get(sci, "groups");
        for (size_t i = 0; i < json_array_size(gs); i++) {
            json_t *g = json_array_get(gs, i);
            if (!fig3_group(g)) continue;
            int first = 1;
            for (size_t k = 0; k < i; k++) {
                json_t *h = json_array_get(gs, k);
                first &= !(fig3_group(h) && !strcmp(sget(h, "task"), sget(g, "task")));
            }
            if (!first) continue;
            fprintf(d, "%s\"%s\"\n", blocks ? "\n\n" : "", sget(g, "task"));
            for (size_t k = i; k < json_array_size(gs); k++) {
                json_t *h = json_array_get(gs, k);
                if (!fig3_group(h) || strcmp(sget(h, "task"), sget(g, "task"))) continue;
                double x = nget(h, "final_sparsity_mean");
                if (isnan(x)) x = atof(sget(h, "variant") + 1) / 100;
                double sd = nget(h, "score_std"); /* null for one job: no error bar */
                fprintf(d, "%.6f %.6f %.6f\n", x, nget(h, "score_mean"), isnan(sd) ? 0.0 : sd);
            }
            blocks++;
        }
        fclose(d);
        if (blocks) {
            char body[512];
            snprintf(body, sizeof body,
                     "set xlabel 'sparsity'\nset ylabel 'dev score'\nset key outside\n"
                     "plot for [i=0:%d] 'fig3.dat' index i using 1:2:3 with yerrorlines title columnheader(1)",
                     blocks - 1);
            if (figure(dir, "fig3", dat, datn, body, notes) != FM_OK) {
                free(dat);
                goto out;
            }
        } else json_array_append_new(notes, json_string("fig3: no supermask scores; skipped"));
        free(dat);
        /* Figure 4: mean sparsity per encoder layer, a line per picked task. */
        dat = NULL;
        d = open_memstream(&dat, &datn);
        for (int p = 0; p < np; p++) {
            const fm_mask *mk = &res[pick[p]].mask;
            fprintf(d, "%s\"%s\"\n", p ? "\n\n" : "", sget(res[pick[p]].rec, "task"));
            for (int l = 0; l < 1024; l++) {
                size_t z = 0, t = 0;
                for (int k = 0; k < mk->n; k++)
                    if (layer_of(mk->t[k].name) == l) z += mk->t[k].numel - mk->t[k].ones, t += mk->t[k].numel;
                if (!t) break;
                fprintf(d, "%d %.6f\n", l, (double)z / (double)t);
            }
        }
        fclose(d);
        if (np >= 1) {
            char body[512];
            snprintf(body, sizeof body,
                     "set xlabel 'encoder layer'\nset ylabel 'sparsity'\nset key outside\n"
                     "plot for [i=0:%d] 'fig4.dat' index i using 1:2 with linespoints title columnheader(1)",
                     np - 1);
            if (figure(dir, "fig4", dat, datn, body, notes) != FM_OK) {
                free(dat);
                goto out;
            }
        } else json_array_append_new(notes, json_string("fig4: no masks; skipped"));
        free(dat);
        if (np >= 2) {
            if (figure(dir, "fig6", f6, f6n,
                       "set xlabel 'task B'\nset ylabel 'task A'\nset cblabel 'shared zeros'\n"
                       "plot 'fig6.dat' matrix with image notitle",
                       notes) != FM_OK)
                goto out;
        } else json_array_append_new(notes, json_string("fig6: fewer than two tasks with masks; skipped"));
        /* Figure 2: angular distance per layer, a line per task (its first
         * job with distances), and the random pair of the first. */
        json_t *dist = json_object_get(sci, "distances");
        dat = NULL;
        d = open_memstream(&dat, &datn);
        int lines = 0;
        const char *seen[64];
        json_t *rnd = NULL;
        for (int i = 0; i < n && lines < 64; i++) {
            json_t *o = json_object_get(dist, sget(res[i].rec, "name"));
            if (!o) continue;
            int dup = 0;
            for (int k = 0; k < lines; k++) dup |= !strcmp(seen[k], sget(res[i].rec, "task"));
            if (dup) continue;
            seen[lines] = sget(res[i].rec, "task");
            if (!rnd) rnd = json_object_get(o, "layers");
            fprintf(d, "%s\"%s %s\"\n", lines ? "\n\n" : "", sget(res[i].rec, "task"), sget(res[i].rec, "mode"));
            json_t *ls = json_object_get(o, "layers");
            for (size_t k = 0; k < json_array_size(ls); k++)
                fprintf(d, "%d %.8f\n", (int)json_integer_value(json_object_get(json_array_get(ls, k), "layer")),
                        nget(json_array_get(ls, k), "angular"));
            lines++;
        }
        if (rnd) {
            fprintf(d, "\n\n\"random pair\"\n");
            for (size_t k = 0; k < json_array_size(rnd); k++)
                fprintf(d, "%d %.8f\n", (int)json_integer_value(json_object_get(json_array_get(rnd, k), "layer")),
                        nget(json_array_get(rnd, k), "random_angular"));
        }
        fclose(d);
        if (lines) {
            char body[512];
            snprintf(body, sizeof body,
                     "set xlabel 'layer (-1: embeddings)'\nset ylabel 'angular distance to pre-trained'\n"
                     "set logscale y\nset key outside\n"
                     "plot for [i=0:%d] 'fig2.dat' index i using 1:2 with linespoints title columnheader(1)",
                     lines);
            if (figure(dir, "fig2", dat, datn, body, notes) != FM_OK) {
                free(dat);
                goto out;
            }
        } else json_array_append_new(notes, json_string("fig2: no full or freeze job with distances; skipped"));
        free(dat);
    }
    free(f6);
    f6 = NULL;
    json_object_set_new(sci, "notes", notes);
    notes = NULL;

    fflush(m);
    /* science.md, science.json */
    if (write_text(dir, "science.md", md, mdn) != FM_OK || write_json(dir, "science.json", sci) != FM_OK) goto out;

    /* Compute. */
    json_t *comp = json_object(), *cj = json_array();
    c = open_memstream(&csv, &csvn);
    {
        static const char *const head[] = {"job",      "team",          "status",
                                           "wall_seconds", "train_seconds", "examples",
                                           "examples_per_second", "comm_seconds", "comm_bytes"};
        fm_csv_row(c, 9, head);
    }
    char *lays = json_dumps(json_object_get(run, "layout"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    fprintf(m, "\n## Compute\n\nLayout: %s\n\n| job | team | wall s | examples/s | comm s | comm bytes |\n"
               "|---|---|---|---|---|---|\n",
            lays ? lays : "{}");
    free(lays);
    double total_work = 0;
    for (int i = 0; i < n; i++) {
        json_t *cp = json_object_get(res[i].rec, "compute");
        json_t *o = cp ? json_deep_copy(cp) : json_object();
        json_object_set_new(o, "name", json_string(sget(res[i].rec, "name")));
        json_array_append_new(cj, o);
        total_work += nget(o, "wall_seconds");
        fm_csv r = fm_csv_start(c);
        fm_csv_str(&r, sget(res[i].rec, "name"));
        fm_csv_fmt(&r, "%d", (int)nget(o, "team"));
        fm_csv_str(&r, sget(res[i].rec, "status"));
        fm_csv_fmt(&r, "%.3f", nget(o, "wall_seconds"));
        fm_csv_fmt(&r, "%.3f", nget(o, "train_seconds"));
        fm_csv_fmt(&r, "%.0f", nget(o, "examples"));
        fm_csv_fmt(&r, "%.2f", nget(o, "examples_per_second"));
        fm_csv_fmt(&r, "%.3f", nget(o, "comm_seconds"));
        fm_csv_fmt(&r, "%.0f", nget(o, "comm_bytes"));
        fm_csv_end(&r);
        fprintf(m, "| %s | %d | %.2f | %.1f | %.3f | %.0f |\n", sget(res[i].rec, "name"), (int)nget(o, "team"),
                nget(o, "wall_seconds"), nget(o, "examples_per_second"), nget(o, "comm_seconds"),
                nget(o, "comm_bytes"));
    }
    fclose(c);
    if (write_text(dir, "jobs_compute.csv", csv, csvn) != FM_OK) {
        json_decref(comp);
        json_decref(cj);
        goto out;
    }
    free(csv);
    csv = NULL;
    json_object_set_new(comp, "jobs", cj);
    json_t *teams = json_object_get(run, "teams");
    json_object_set_new(comp, "teams", teams ? json_incref(teams) : json_array());
    json_object_set(comp, "layout", json_object_get(run, "layout") ? json_object_get(run, "layout") : json_null());
    double wall = nget(run, "wall_seconds");
    json_object_set_new(comp, "wall_seconds", json_real(wall));
    c = open_memstream(&csv, &csvn);
    {
        static const char *const head[] = {"team", "jobs", "busy_seconds", "idle_seconds"};
        fm_csv_row(c, 4, head);
    }
    fprintf(m, "\n| team | jobs | busy s | idle s |\n|---|---|---|---|\n");
    for (size_t t = 0; t < json_array_size(teams); t++) {
        json_t *tm = json_array_get(teams, t);
        fm_csv r = fm_csv_start(c);
        fm_csv_fmt(&r, "%zu", t);
        fm_csv_fmt(&r, "%.0f", nget(tm, "jobs"));
        fm_csv_fmt(&r, "%.3f", nget(tm, "busy_seconds"));
        fm_csv_fmt(&r, "%.3f", nget(tm, "idle_seconds"));
        fm_csv_end(&r);
        fprintf(m, "| %zu | %.0f | %.2f | %.2f |\n", t, nget(tm, "jobs"), nget(tm, "busy_seconds"),
                nget(tm, "idle_seconds"));
    }
    fclose(c);
    if (write_text(dir, "teams.csv", csv, csvn) != FM_OK) {
        json_decref(comp);
        goto out;
    }
    fprintf(m, "\nRun wall time: %.2f s; sum of job wall times: %.2f s.\n", wall, total_work);
    /* Data-parallel projection: per job with gradient sums, the bytes per
     * step, the ring-allreduce time at 100 Gb/s on p nodes, against the step's
     * compute time measured here. */
    json_t *proj = json_array();
    for (int i = 0; i < n; i++) {
        json_t *cp = json_object_get(res[i].rec, "compute");
        double bytes = nget(cp, "comm_bytes_per_step"), tr = nget(cp, "train_seconds"), cs = nget(cp, "comm_seconds");
        double steps = nget(json_object_get(res[i].rec, "metrics"), "steps"), R = nget(cp, "replicas");
        if (isnan(bytes) || bytes <= 0 || isnan(tr) || isnan(steps) || steps <= 0) continue;
        if (isnan(R) || R < 1) R = 1;
        if (isnan(cs)) cs = 0;
        /* compute of one whole batch on one replica (the replicas split it) */
        double t1 = (tr - cs) / steps * R;
        const double bw = 100e9 / 8;
        if (!json_array_size(proj))
            fprintf(m, "\n### Data-parallel projection (100 Gb/s, ring allreduce)\n\n"
                       "t_comm(p) = 2 (p-1)/p x bytes / 12.5 GB/s; t1 = measured compute of one batch on one "
                       "replica = (train s - comm s) / steps x replicas. Strong scaling (the batch split over p "
                       "nodes): efficiency = (t1/p) / (t1/p + t_comm); weak scaling (a batch per node): t1 / (t1 + "
                       "t_comm). No overlap assumed (a lower bound).\n\n"
                       "| job | bytes/step | t1 s | p | t_comm s | strong eff. | weak eff. |\n|---|---|---|---|---|---|---|\n");
        for (int p = 16; p <= 64; p *= 4) {
            double tc = 2.0 * (p - 1) / p * bytes / bw;
            double es = (t1 / p) / (t1 / p + tc), ew = t1 / (t1 + tc);
            json_t *o = json_pack("{s:s, s:f, s:f, s:i, s:f, s:f, s:f}", "job", sget(res[i].rec, "name"), "bytes_per_step",
                                  bytes, "t1_seconds", t1, "nodes", p, "t_comm_seconds", tc, "strong_efficiency", es,
                                  "weak_efficiency", ew);
            json_array_append_new(proj, o);
            fprintf(m, "| %s | %.0f | %.3f | %d | %.4f | %.3f | %.3f |\n", sget(res[i].rec, "name"), bytes, t1, p, tc,
                    es, ew);
        }
    }
    json_object_set_new(comp, "projection", proj);
    double base = nget(run, "baseline_wall_seconds");
    int ranks = (int)nget(json_object_get(run, "layout"), "world_size");
    if (!isnan(base) && wall > 0 && ranks > 0) {
        json_object_set_new(comp, "baseline_wall_seconds", json_real(base));
        json_object_set_new(comp, "speedup", json_real(base / wall));
        json_object_set_new(comp, "efficiency", json_real(base / wall / ranks));
        fprintf(m, "Scaling: baseline (1 rank) %.2f s, speedup %.3f, efficiency %.3f over %d ranks.\n", base,
                base / wall, base / wall / ranks, ranks);
    }
    fclose(m);
    m = NULL;
    if (write_json(dir, "compute.json", comp) != FM_OK || write_text(dir, "report.md", md, mdn) != FM_OK) {
        json_decref(comp);
        goto out;
    }
    json_t *all = json_object();
    json_object_set(all, "science", sci);
    json_object_set_new(all, "compute", comp);
    int wr = write_json(dir, "report.json", all);
    json_decref(all);
    if (wr != FM_OK) goto out;
    rc = FM_OK;
out:
    if (m) fclose(m);
    free(md);
    free(csv);
    free(f6);
    free(done);
    free(pick);
    json_decref(sci);
    json_decref(jobs);
    json_decref(groups);
    json_decref(layers);
    json_decref(overlap);
    json_decref(failed);
    json_decref(notes);
    free(dir);
    return rc;
}

int fm_report_main_table(const char *report_dir, char **out) {
    char *path = fm_path_join(report_dir, "science.md"), *text = NULL;
    size_t len;
    *out = NULL;
    int rc = fm_read_file(path, &text, &len);
    free(path);
    if (rc != FM_OK) return FM_ERR;
    /* the first table and the heading above it */
    char *p = strstr(text, "\n|"), *head = p;
    if (p) {
        while (head > text && head[-1] != '\n') head--;
        while (head > text && (head[-1] == '\n')) head--;
        while (head > text && head[-1] != '\n') head--;
        char *e = p + 1;
        while (*e == '|') {
            char *nl = strchr(e, '\n');
            e = nl ? nl + 1 : e + strlen(e);
        }
        *out = strndup(head, (size_t)(e - head));
    }
    free(text);
    return FM_OK;
}
