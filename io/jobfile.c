/* jobfile.c: job files read with inih, expanded into jobs (see jobfile.h). */
#define _GNU_SOURCE
#include "jobfile.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"

#define mode_names fm_train_mode_names

void fm_job_hyper_default(fm_job_hyper *h) { fm_ft_opts_default(h); }

static int mode_index(const char *m) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(m, mode_names[i])) return i;
    return -1;
}

typedef struct {
    fm_jobfile *jf;
    char *dir;        /* the job file's directory */
    char msg[512];    /* the first error */
    int failed, err_line;
    FILE *fp;
    int line;         /* lines read so far */
    int long_line;    /* first line longer than inih's buffer, or 0 */
    char **seen;      /* "section\nkey" already given */
    int nseen;
    int cur_mode;     /* the mode a [full|freeze|supermask] weights list fills */
} parse_state;

/* Record the first error; returns 0 so inih reports the line. */
static int perr(parse_state *s, const char *fmt, ...) FM_PRINTF(2, 3);
static int perr(parse_state *s, const char *fmt, ...) {
    if (!s->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->msg, sizeof s->msg, fmt, ap);
        va_end(ap);
        s->failed = 1;
        s->err_line = s->line;
    }
    return 0;
}

/* "key: expected a, b or c, found 'v'" from the names of an enum (src/opts.h). */
static int bad_name(parse_state *s, const char *key, const char *const *names, int n, const char *v) {
    char list[128];
    fm_opt_enum_list(names, n, list, sizeof list);
    return perr(s, "%s: expected %s, found '%s'", key, list, v);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

static int parse_double(const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !(x >= lo && x <= hi)) return FM_ERR;
    *out = x;
    return FM_OK;
}

static int parse_int(const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) return FM_ERR;
    *out = x;
    return FM_OK;
}

/* Split v at sep into at most max trimmed non-empty items; calls item(i, text). */
typedef int (*item_fn)(parse_state *s, int i, const char *text);
static int split_list(parse_state *s, const char *key, const char *v, char sep, int max, item_fn item, int *count) {
    char *copy = fm_xstrdup(v), *p = copy;
    int n = 0, rc = 1;
    for (;;) {
        char *q = strchr(p, sep);
        if (q) *q = 0;
        char *t = trim(p);
        if (!*t) {
            rc = perr(s, "%s: empty item in list '%s'", key, v);
            break;
        }
        if (n == max) {
            rc = perr(s, "%s: more than %d items", key, max);
            break;
        }
        if (!item(s, n, t)) {
            rc = 0;
            break;
        }
        n++;
        if (!q) break;
        p = q + 1;
    }
    free(copy);
    *count = n;
    return rc;
}

static int item_task(parse_state *s, int i, const char *t) {
    static const char *const known[] = {"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (!strcmp(t, known[k])) {
            for (int j = 0; j < i; j++)
                if (!strcmp(s->jf->tasks[j], t)) return perr(s, "tasks: '%s' given twice", t);
            snprintf(s->jf->tasks[i], sizeof s->jf->tasks[i], "%s", t);
            return 1;
        }
    return perr(s, "tasks: expected CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE or WNLI, found '%s'", t);
}

static int item_mode(parse_state *s, int i, const char *t) {
    if (i >= 3 || mode_index(t) < 0) return bad_name(s, "modes", fm_train_mode_names, 3, t);
    for (int j = 0; j < i; j++)
        if (!strcmp(s->jf->modes[j], t)) return perr(s, "modes: '%s' given twice", t);
    snprintf(s->jf->modes[i], sizeof s->jf->modes[i], "%s", t);
    return 1;
}

/* A weights item into list (3 x 16 chars): the sweep's or a mode's. */
static int weights_into(parse_state *s, char (*list)[16], int i, const char *t) {
    if (i >= 3 || fm_opt_enum_value(fm_weights_names, 3, t) < 0) return bad_name(s, "weights", fm_weights_names, 3, t);
    for (int j = 0; j < i; j++)
        if (!strcmp(list[j], t)) return perr(s, "weights: '%s' given twice", t);
    snprintf(list[i], sizeof list[i], "%s", t);
    return 1;
}
static int item_weights(parse_state *s, int i, const char *t) { return weights_into(s, s->jf->weights, i, t); }
static int item_mode_weights(parse_state *s, int i, const char *t) {
    return weights_into(s, s->jf->mode_weights[s->cur_mode], i, t);
}

static int item_seed(parse_state *s, int i, const char *t) {
    long long v;
    if (parse_int(t, 0, 1LL << 62, &v) != FM_OK) return perr(s, "seeds: expected an integer >= 0, found '%s'", t);
    for (int j = 0; j < i; j++)
        if (s->jf->seeds[j] == (uint64_t)v) return perr(s, "seeds: %lld given twice", v);
    s->jf->seeds[i] = (uint64_t)v;
    return 1;
}

static int item_sparsity(parse_state *s, int i, const char *t) {
    double v;
    if (parse_double(t, 0, 0.999999, &v) != FM_OK)
        return perr(s, "sparsities: expected a number in [0, 1), found '%s'", t);
    for (int j = 0; j < i; j++)
        if (s->jf->sparsities[j] == v) return perr(s, "sparsities: %s given twice", t);
    s->jf->sparsities[i] = v;
    return 1;
}

static int item_freeze(parse_state *s, int i, const char *t) {
    if (strlen(t) >= sizeof s->jf->freeze[i]) return perr(s, "sets: freeze set '%s' is too long", t);
    snprintf(s->jf->freeze[i], sizeof s->jf->freeze[i], "%s", t);
    return 1;
}

static int set_path(parse_state *s, char **dst, const char *v) {
    free(*dst);
    *dst = v[0] == '/' ? fm_xstrdup(v) : fm_path_join(s->dir, v);
    return 1;
}

static int set_str(parse_state *s, const char *key, char *dst, size_t cap, const char *v) {
    if (strlen(v) >= cap) return perr(s, "%s: value longer than %zu characters", key, cap - 1);
    snprintf(dst, cap, "%s", v);
    return 1;
}

#define DBL(field, lo, hi)                                                                                  \
    do {                                                                                                    \
        double d_;                                                                                          \
        if (parse_double(v, lo, hi, &d_) != FM_OK)                                                          \
            return perr(s, "%s: expected a number in [%g, %g], found '%s'", name, (double)(lo), (double)(hi), v); \
        field = d_;                                                                                         \
        return 1;                                                                                           \
    } while (0)
#define INT(field, lo, hi)                                                                                  \
    do {                                                                                                    \
        long long i_;                                                                                       \
        if (parse_int(v, lo, hi, &i_) != FM_OK)                                                             \
            return perr(s, "%s: expected an integer in [%lld, %lld], found '%s'", name, (long long)(lo),    \
                        (long long)(hi), v);                                                                \
        field = i_;                                                                                         \
        return 1;                                                                                           \
    } while (0)

/* A [train] key: a row of the option table with that job key. */
static int train_key(parse_state *s, fm_job_hyper *h, const char *name, const char *v) {
    for (int i = 0; i < fm_ft_opt_count; i++) {
        const fm_opt *r = &fm_ft_opt_table[i];
        if (!r->job || strcmp(r->job, name) != 0) continue;
        if (fm_opt_parse(r, h, name, v) != FM_OK) return perr(s, "%s", fm_last_error());
        return 1;
    }
    return perr(s, "unknown key '%s' in section [train]", name);
}

static int mode_key(parse_state *s, int mi, const char *name, const char *v) {
    fm_jobfile *jf = s->jf;
    if (!strcmp(name, "lr")) DBL(jf->mode_lr[mi], 0, 10);
    if (!strcmp(name, "epochs")) DBL(jf->mode_epochs[mi], 0, 1e6);
    int n;
    if (!strcmp(name, "weights")) {
        s->cur_mode = mi;
        int ok = split_list(s, name, v, ',', 3, item_mode_weights, &n);
        jf->mode_nweights[mi] = n;
        return ok;
    }
    if (mi == 1 && !strcmp(name, "sets")) {
        int ok = split_list(s, name, v, '|', FM_JOB_MAX_LIST, item_freeze, &n);
        jf->nfreeze = n;
        return ok;
    }
    if (mi == 2) {
        if (!strcmp(name, "sparsities")) {
            int ok = split_list(s, name, v, ',', FM_JOB_MAX_LIST, item_sparsity, &n);
            jf->nsparsities = n;
            return ok;
        }
        if (!strcmp(name, "ste")) {
            if (fm_opt_enum_value(fm_ste_names, 2, v) < 0) return bad_name(s, name, fm_ste_names, 2, v);
            return set_str(s, name, jf->ste, sizeof jf->ste, v);
        }
        if (!strcmp(name, "ranking")) {
            if (fm_opt_enum_value(fm_init_rank_names, 2, v) < 0) return bad_name(s, name, fm_init_rank_names, 2, v);
            return set_str(s, name, jf->ranking, sizeof jf->ranking, v);
        }
        if (!strcmp(name, "masked")) return set_str(s, name, jf->masked, sizeof jf->masked, v);
        if (!strcmp(name, "layers")) return set_str(s, name, jf->layers, sizeof jf->layers, v);
        if (!strcmp(name, "samples")) INT(jf->samples, 1, 10000);
        if (!strcmp(name, "mask_lr")) DBL(jf->mask_lr, 0, 1e3);
    }
    return perr(s, "unknown key '%s' in section [%s]", name, mode_names[mi]);
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    parse_state *s = user;
    fm_jobfile *jf = s->jf;
    if (s->failed) return 1; /* report the first error only */
    if (!name) return 1;
    char *vbuf = fm_xstrdup(value ? value : ""), *v = trim(vbuf);
    /* repeated keys */
    size_t kl = strlen(section) + strlen(name) + 2;
    char *key = fm_xmalloc(kl);
    snprintf(key, kl, "%s\n%s", section, name);
    for (int i = 0; i < s->nseen; i++)
        if (!strcmp(s->seen[i], key)) {
            free(key);
            free(vbuf);
            return perr(s, "key '%s' given twice in section [%s]", name, section);
        }
    s->seen = fm_xrealloc(s->seen, sizeof(char *) * (size_t)(s->nseen + 1));
    s->seen[s->nseen++] = key;
    int ok = 1, n;
    if (!*v) {
        ok = perr(s, "%s: empty value", name);
    } else if (!strcmp(section, "run")) {
        if (!strcmp(name, "model")) ok = set_path(s, &jf->model, v);
        else if (!strcmp(name, "data")) ok = set_path(s, &jf->data, v);
        else if (!strcmp(name, "out")) ok = set_path(s, &jf->out, v);
        else if (!strcmp(name, "name")) {
            free(jf->name);
            jf->name = fm_xstrdup(v);
        } else ok = perr(s, "unknown key '%s' in section [run] (expected model, data, out or name)", name);
    } else if (!strcmp(section, "sweep")) {
        if (!strcmp(name, "tasks")) {
            ok = split_list(s, name, v, ',', FM_JOB_MAX_LIST, item_task, &n);
            jf->ntasks = n;
        } else if (!strcmp(name, "modes")) {
            ok = split_list(s, name, v, ',', 3, item_mode, &n);
            jf->nmodes = n;
        } else if (!strcmp(name, "seeds")) {
            ok = split_list(s, name, v, ',', FM_JOB_MAX_LIST, item_seed, &n);
            jf->nseeds = n;
        } else if (!strcmp(name, "weights")) {
            ok = split_list(s, name, v, ',', 3, item_weights, &n);
            jf->nweights = n;
        } else ok = perr(s, "unknown key '%s' in section [sweep] (expected tasks, modes, seeds or weights)", name);
    } else if (!strcmp(section, "train")) {
        ok = train_key(s, &jf->train, name, v);
    } else if (mode_index(section) >= 0) {
        ok = mode_key(s, mode_index(section), name, v);
    } else if (!strcmp(section, "layout") && !strcmp(name, "pipeline_schedule")) {
        int i = fm_opt_enum_value(fm_pipe_schedule_names, 2, v);
        if (i < 0) ok = bad_name(s, name, fm_pipe_schedule_names, 2, v);
        else jf->pipeline_schedule = (fm_pipe_schedule)i;
    } else if (!strcmp(section, "layout")) {
        long long x;
        int *dst = !strcmp(name, "team_size")       ? &jf->team_size
                   : !strcmp(name, "stages")        ? &jf->stages
                   : !strcmp(name, "micro_batches") ? &jf->micro_batches
                   : !strcmp(name, "threads")       ? &jf->threads
                   : !strcmp(name, "tensor_parallel") ? &jf->tensor_parallel
                                                    : NULL;
        if (!dst)
            ok = perr(s,
                      "unknown key '%s' in section [layout] (expected team_size, stages, micro_batches, "
                      "tensor_parallel, pipeline_schedule or threads)",
                      name);
        else if (parse_int(v, 1, 1 << 20, &x) != FM_OK)
            ok = perr(s, "%s: expected an integer >= 1, found '%s'", name, v);
        else *dst = (int)x;
    } else {
        ok = perr(s, "unknown section [%s] (expected run, sweep, train, full, freeze, supermask or layout)", section);
    }
    free(vbuf);
    return ok;
}

/* inih's line reader: fgets, counting lines, noting a line cut by the buffer. */
static char *read_line(char *str, int num, void *stream) {
    parse_state *s = stream;
    char *r = fgets(str, num, s->fp);
    if (!r) return NULL;
    size_t n = strlen(r);
    if (n && r[n - 1] == '\n') {
        s->line++;
    } else if (!feof(s->fp)) {
        if (!s->long_line) s->long_line = s->line + 1;
        /* drop the rest of the line */
        int ch;
        while ((ch = fgetc(s->fp)) != EOF && ch != '\n') {
        }
        s->line++;
    } else {
        s->line++;
    }
    return r;
}

int fm_jobfile_read(fm_jobfile *jf, const char *path) {
    memset(jf, 0, sizeof *jf);
    jf->path = fm_xstrdup(path);
    fm_job_hyper_default(&jf->train);
    jf->samples = 10;
    jf->mask_lr = -1;
    fm_ft_opts dflt;
    fm_ft_opts_default(&dflt);
    snprintf(jf->ste, sizeof jf->ste, "%s", fm_ste_names[dflt.ste]);
    snprintf(jf->ranking, sizeof jf->ranking, "%s", fm_init_rank_names[dflt.init_rank]);
    for (int i = 0; i < 3; i++) jf->mode_lr[i] = jf->mode_epochs[i] = -1;
    jf->team_size = jf->stages = jf->micro_batches = jf->tensor_parallel = 1;
    jf->pipeline_schedule = FM_PIPE_1F1B;
    parse_state s = {.jf = jf};
    const char *slash = strrchr(path, '/');
    s.dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : fm_xstrdup(".");
    s.fp = fopen(path, "r");
    int rc = -1;
    if (s.fp) {
        rc = ini_parse_stream(read_line, &s, handler, &s);
        fclose(s.fp);
    }
    for (int i = 0; i < s.nseen; i++) free(s.seen[i]);
    free(s.seen);
    free(s.dir);
    if (rc == -1) {
        fm_fail("%s: cannot open: %s", path, strerror(errno));
        goto bad;
    }
    if (rc == -2) {
        fm_fail("%s: out of memory", path);
        goto bad;
    }
    if (s.long_line && (rc <= 0 || s.long_line <= rc) && (!s.failed || s.long_line <= s.err_line)) {
        fm_fail("%s:%d: line longer than %d characters", path, s.long_line, INI_MAX_LINE - 2);
        goto bad;
    }
    if (rc > 0) {
        if (s.failed && s.err_line <= rc) fm_fail("%s:%d: %s", path, s.err_line, s.msg);
        else fm_fail("%s:%d: expected [section], key = value or a comment", path, rc);
        goto bad;
    }
    if (!jf->model) {
        fm_fail("%s: [run] model is required", path);
        goto bad;
    }
    if (!jf->data) {
        fm_fail("%s: [run] data is required", path);
        goto bad;
    }
    if (!jf->ntasks) {
        fm_fail("%s: [sweep] tasks is required", path);
        goto bad;
    }
    if (!jf->nmodes) {
        fm_fail("%s: [sweep] modes is required", path);
        goto bad;
    }
    for (int i = 0; i < jf->nmodes; i++)
        if (!strcmp(jf->modes[i], fm_train_mode_names[FM_TRAIN_FREEZE]) && !jf->nfreeze) {
            fm_fail("%s: mode freeze needs [freeze] sets", path);
            goto bad;
        }
    if (jf->nfreeze) {
        int has = 0;
        for (int i = 0; i < jf->nmodes; i++) has |= !strcmp(jf->modes[i], fm_train_mode_names[FM_TRAIN_FREEZE]);
        if (!has) {
            fm_fail("%s: [freeze] sets given but freeze is not among [sweep] modes", path);
            goto bad;
        }
    }
    if (!jf->nseeds) jf->seeds[jf->nseeds++] = 42;
    if (!jf->nweights)
        snprintf(jf->weights[jf->nweights++], sizeof jf->weights[0], "%s", fm_weights_names[FM_WEIGHTS_PRETRAINED]);
    if (!jf->nsparsities) jf->sparsities[jf->nsparsities++] = 0;
    if (!jf->name) {
        const char *b = slash ? slash + 1 : path;
        const char *dot = strrchr(b, '.');
        jf->name = dot && dot != b ? strndup(b, (size_t)(dot - b)) : fm_xstrdup(b);
    }
    return FM_OK;
bad:
    fm_jobfile_free(jf);
    return FM_ERR;
}

void fm_jobfile_free(fm_jobfile *jf) {
    free(jf->path);
    free(jf->name);
    free(jf->model);
    free(jf->data);
    free(jf->out);
    memset(jf, 0, sizeof *jf);
}

/* A freeze set as a name part: letters, digits, '-' and '_' kept, the rest '_'. */
static void tag(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 1 < cap; s++)
        out[n++] = (isalnum((unsigned char)*s) || *s == '-' || *s == '_') ? *s : '_';
    out[n] = 0;
}

int fm_jobfile_expand(const fm_jobfile *jf, fm_job **jobs, int *njobs) {
    int cap = 16, n = 0;
    fm_job *js = fm_xmalloc(sizeof(fm_job) * (size_t)cap);
    for (int t = 0; t < jf->ntasks; t++)
        for (int m = 0; m < jf->nmodes; m++) {
            int mi = mode_index(jf->modes[m]);
            int nvar = mi == 1 ? jf->nfreeze : mi == 2 ? jf->nsparsities : 1;
            int nw = jf->mode_nweights[mi] ? jf->mode_nweights[mi] : jf->nweights;
            const char(*wl)[16] = jf->mode_nweights[mi] ? jf->mode_weights[mi] : jf->weights;
            for (int v = 0; v < nvar; v++)
                for (int w = 0; w < nw; w++)
                    for (int s = 0; s < jf->nseeds; s++) {
                        if (n == cap) js = fm_xrealloc(js, sizeof(fm_job) * (size_t)(cap *= 2));
                        fm_job *j = &js[n];
                        memset(j, 0, sizeof *j);
                        j->index = n;
                        snprintf(j->task, sizeof j->task, "%s", jf->tasks[t]);
                        snprintf(j->mode, sizeof j->mode, "%s", jf->modes[m]);
                        snprintf(j->weights, sizeof j->weights, "%s", wl[w]);
                        j->seed = jf->seeds[s];
                        j->h = jf->train;
                        if (jf->mode_lr[mi] >= 0) j->h.lr = jf->mode_lr[mi];
                        if (jf->mode_epochs[mi] >= 0) j->h.epochs = jf->mode_epochs[mi];
                        char var[200] = "";
                        if (mi == 1) {
                            snprintf(j->freeze, sizeof j->freeze, "%s", jf->freeze[v]);
                            char tg[190];
                            tag(tg, sizeof tg, j->freeze);
                            snprintf(var, sizeof var, ".%s", tg);
                        } else if (mi == 2) {
                            j->sparsity = jf->sparsities[v];
                            snprintf(var, sizeof var, ".s%.4g", 100 * j->sparsity);
                        }
                        char wt[32] = "";
                        if (strcmp(j->weights, fm_weights_names[FM_WEIGHTS_PRETRAINED]))
                            snprintf(wt, sizeof wt, ".%s", j->weights);
                        snprintf(j->name, sizeof j->name, "%s.%s%s%s.seed%llu", j->task, j->mode, var, wt,
                                 (unsigned long long)j->seed);
                        for (int k = 0; k < n; k++)
                            if (!strcmp(js[k].name, j->name)) {
                                fm_fail("%s: two jobs would share the run directory '%s' (freeze sets "
                                        "that differ only in punctuation?)",
                                        jf->path, j->name);
                                free(js);
                                return FM_ERR;
                            }
                        n++;
                    }
        }
    *jobs = js;
    *njobs = n;
    return FM_OK;
}

/* Data lines of path (lines less the header), or -1 when it cannot be read. */
static int64_t count_examples(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char buf[1 << 16];
    int64_t lines = 0;
    int last = '\n';
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < k; i++) lines += buf[i] == '\n';
        last = buf[k - 1];
    }
    fclose(f);
    if (last != '\n') lines++;
    return lines > 0 ? lines - 1 : 0;
}

void fm_jobs_estimate(fm_job *jobs, int n, const char *data_dir) {
    for (int i = 0; i < n; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s/train.tsv", jobs[i].task);
        char *p = fm_path_join(data_dir, sub);
        int64_t ex = count_examples(p);
        free(p);
        if (ex < 0) ex = 0;
        if (jobs[i].h.max_train_examples >= 0 && jobs[i].h.max_train_examples < ex) ex = jobs[i].h.max_train_examples;
        double epochs = jobs[i].h.epochs;
        if (jobs[i].h.max_steps >= 0 && ex > 0) {
            double e2 = (double)jobs[i].h.max_steps * jobs[i].h.batch_size / (double)ex;
            epochs = e2;
        }
        jobs[i].work = epochs * (double)ex * (double)jobs[i].h.max_seq_length;
    }
}

static const fm_job *sort_jobs;
static int by_work(const void *a, const void *b) {
    const fm_job *x = &sort_jobs[*(const int *)a], *y = &sort_jobs[*(const int *)b];
    if (x->work != y->work) return x->work > y->work ? -1 : 1;
    return x->index - y->index;
}

void fm_jobs_order(const fm_job *jobs, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    sort_jobs = jobs;
    qsort(order, (size_t)n, sizeof(int), by_work);
    sort_jobs = NULL;
}
