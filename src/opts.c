/* opts.c: the option tables as data, their defaults, and the enums' names
 * (see opts.h). */
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

const char *const fm_train_mode_names[3] = {"full", "freeze", "supermask"};
const char *const fm_weights_names[3] = {"pretrained", "shuffled", "random"};
const char *const fm_ste_names[2] = {"sigmoid", "identity"};
const char *const fm_init_rank_names[2] = {"global", "tensor"};
const char *const fm_pipe_schedule_names[2] = {"gpipe", "1f1b"};

/* Per kind: how a default is set, the descriptor's kind, default and names. */
#define FM_OPT_SETDEF_STR(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_F64(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_INT(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_I64(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_U64(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_NOFLAG(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_FLAG(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_LIST(o, f, d) (o)->f = d, (o)->n##f = 0;
#define FM_OPT_SETDEF_MODE(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_WEIGHTS(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_STE(o, f, d) (o)->f = d;
#define FM_OPT_SETDEF_RANK(o, f, d) (o)->f = d;

#define FM_OPT_KIND_STR FM_OPT_STR
#define FM_OPT_KIND_F64 FM_OPT_F64
#define FM_OPT_KIND_INT FM_OPT_INT
#define FM_OPT_KIND_I64 FM_OPT_I64
#define FM_OPT_KIND_U64 FM_OPT_U64
#define FM_OPT_KIND_NOFLAG FM_OPT_NOFLAG
#define FM_OPT_KIND_FLAG FM_OPT_FLAG
#define FM_OPT_KIND_LIST FM_OPT_LIST
#define FM_OPT_KIND_MODE FM_OPT_ENUM
#define FM_OPT_KIND_WEIGHTS FM_OPT_ENUM
#define FM_OPT_KIND_STE FM_OPT_ENUM
#define FM_OPT_KIND_RANK FM_OPT_ENUM

#define FM_OPT_NUM_STR(d) 0
#define FM_OPT_NUM_F64(d) (double)(d)
#define FM_OPT_NUM_INT(d) (double)(d)
#define FM_OPT_NUM_I64(d) (double)(d)
#define FM_OPT_NUM_U64(d) (double)(d)
#define FM_OPT_NUM_NOFLAG(d) (double)(d)
#define FM_OPT_NUM_FLAG(d) (double)(d)
#define FM_OPT_NUM_LIST(d) 0
#define FM_OPT_NUM_MODE(d) (double)(d)
#define FM_OPT_NUM_WEIGHTS(d) (double)(d)
#define FM_OPT_NUM_STE(d) (double)(d)
#define FM_OPT_NUM_RANK(d) (double)(d)

#define FM_OPT_DSTR_STR(d) d
#define FM_OPT_DSTR_F64(d) NULL
#define FM_OPT_DSTR_INT(d) NULL
#define FM_OPT_DSTR_I64(d) NULL
#define FM_OPT_DSTR_U64(d) NULL
#define FM_OPT_DSTR_NOFLAG(d) NULL
#define FM_OPT_DSTR_FLAG(d) NULL
#define FM_OPT_DSTR_LIST(d) NULL
#define FM_OPT_DSTR_MODE(d) NULL
#define FM_OPT_DSTR_WEIGHTS(d) NULL
#define FM_OPT_DSTR_STE(d) NULL
#define FM_OPT_DSTR_RANK(d) NULL

#define FM_OPT_NAMES_STR NULL, 0
#define FM_OPT_NAMES_F64 NULL, 0
#define FM_OPT_NAMES_INT NULL, 0
#define FM_OPT_NAMES_I64 NULL, 0
#define FM_OPT_NAMES_U64 NULL, 0
#define FM_OPT_NAMES_NOFLAG NULL, 0
#define FM_OPT_NAMES_FLAG NULL, 0
#define FM_OPT_NAMES_LIST NULL, 0
#define FM_OPT_NAMES_MODE fm_train_mode_names, 3
#define FM_OPT_NAMES_WEIGHTS fm_weights_names, 3
#define FM_OPT_NAMES_STE fm_ste_names, 2
#define FM_OPT_NAMES_RANK fm_init_rank_names, 2

#define FM_OPT_COUNT_OFF_LIST(T, f) offsetof(T, n##f)
#define FM_OPT_COUNT_OFF_STR(T, f) 0
#define FM_OPT_COUNT_OFF_F64(T, f) 0
#define FM_OPT_COUNT_OFF_INT(T, f) 0
#define FM_OPT_COUNT_OFF_I64(T, f) 0
#define FM_OPT_COUNT_OFF_U64(T, f) 0
#define FM_OPT_COUNT_OFF_NOFLAG(T, f) 0
#define FM_OPT_COUNT_OFF_FLAG(T, f) 0
#define FM_OPT_COUNT_OFF_MODE(T, f) 0
#define FM_OPT_COUNT_OFF_WEIGHTS(T, f) 0
#define FM_OPT_COUNT_OFF_STE(T, f) 0
#define FM_OPT_COUNT_OFF_RANK(T, f) 0

#define FT_DEFAULT(kind, f, d, ...) FM_OPT_SETDEF_##kind(o, f, d)
void fm_ft_opts_default(fm_ft_opts *o) {
    memset(o, 0, sizeof *o);
    FM_FT_OPTIONS(FT_DEFAULT)
}
void fm_pt_opts_default(fm_pt_opts *o) {
    memset(o, 0, sizeof *o);
    FM_PT_OPTIONS(FT_DEFAULT)
}
#undef FT_DEFAULT

#define FM_OPT_ROW(T, kind, f, d, name, arg, lo, hi, key, job, hyper, flags, help)                                  \
    {FM_OPT_KIND_##kind, #f, offsetof(T, f), FM_OPT_COUNT_OFF_##kind(T, f), FM_OPT_NUM_##kind(d),                   \
     FM_OPT_DSTR_##kind(d), name, arg, lo, hi, key, job, hyper, flags, help, FM_OPT_NAMES_##kind},
#define FT_ROW(...) FM_OPT_ROW(fm_ft_opts, __VA_ARGS__)
#define PT_ROW(...) FM_OPT_ROW(fm_pt_opts, __VA_ARGS__)
const fm_opt fm_ft_opt_table[] = {FM_FT_OPTIONS(FT_ROW)};
const int fm_ft_opt_count = (int)(sizeof fm_ft_opt_table / sizeof fm_ft_opt_table[0]);
const fm_opt fm_pt_opt_table[] = {FM_PT_OPTIONS(PT_ROW)};
const int fm_pt_opt_count = (int)(sizeof fm_pt_opt_table / sizeof fm_pt_opt_table[0]);
#undef FT_ROW
#undef PT_ROW

const fm_opt *fm_opt_find(const fm_opt *table, int n, const char *field) {
    for (int i = 0; i < n; i++)
        if (!strcmp(table[i].field, field)) return &table[i];
    return NULL;
}

int fm_opt_enum_value(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (s && !strcmp(s, names[i])) return i;
    return -1;
}

void fm_opt_enum_list(const char *const *names, int n, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < cap; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
        int w = snprintf(buf + k, cap - k, "%s%s", sep, names[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

long long fm_opt_get_int(const fm_opt *r, const void *obj) {
    const void *p = fm_opt_cptr(r, obj);
    switch (r->kind) {
    case FM_OPT_INT:
    case FM_OPT_NOFLAG:
    case FM_OPT_FLAG:
    case FM_OPT_ENUM: return *(const int *)p; /* every enum of the tables is int-sized */
    case FM_OPT_I64: return (long long)*(const int64_t *)p;
    case FM_OPT_U64: return (long long)*(const uint64_t *)p;
    default: return 0;
    }
}

void fm_opt_set_int(const fm_opt *r, void *obj, long long v) {
    void *p = fm_opt_ptr(r, obj);
    switch (r->kind) {
    case FM_OPT_INT:
    case FM_OPT_NOFLAG:
    case FM_OPT_FLAG:
    case FM_OPT_ENUM: *(int *)p = (int)v; break;
    case FM_OPT_I64: *(int64_t *)p = (int64_t)v; break;
    case FM_OPT_U64: *(uint64_t *)p = (uint64_t)v; break;
    default: break;
    }
}

int fm_ft_opts_check(const fm_ft_opts *o) {
    const int freeze = o->mode == FM_TRAIN_FREEZE, supermask = o->mode == FM_TRAIN_SUPERMASK;
    if (freeze != (o->freeze != NULL))
        return fm_fail(freeze ? "--mode freeze needs --freeze SET (e.g. key,deepest:2,word_embeddings)"
                              : "--freeze goes with --mode freeze");
    if (!supermask && (o->mask_glob || o->mask_layers || o->init_sparsity != 0))
        return fm_fail("--mask, --mask-layers and --init-sparsity go with --mode supermask");
    return FM_OK;
}

int fm_opt_parse(const fm_opt *r, void *obj, const char *label, const char *text) {
    void *p = fm_opt_ptr(r, obj);
    char *end;
    switch (r->kind) {
    case FM_OPT_STR: *(const char **)p = text; return FM_OK;
    case FM_OPT_LIST: {
        const char **list = *(const char ***)p;
        int *n = (int *)((char *)obj + r->count_offset);
        list[(*n)++] = text;
        return FM_OK;
    }
    case FM_OPT_F64: {
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || *end || errno || !(v >= r->lo && v <= r->hi))
            return fm_fail("%s: expected a number in [%g, %g], found '%s'", label, r->lo, r->hi, text);
        *(double *)p = v;
        return FM_OK;
    }
    case FM_OPT_INT:
    case FM_OPT_I64:
    case FM_OPT_U64: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        const long long lo = (long long)r->lo, hi = (long long)r->hi;
        if (!*text || *end || errno || v < lo || v > hi)
            return fm_fail("%s: expected an integer in [%lld, %lld], found '%s'", label, lo, hi, text);
        fm_opt_set_int(r, obj, v);
        return FM_OK;
    }
    case FM_OPT_NOFLAG:
    case FM_OPT_FLAG:
        if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "1")) *(int *)p = 1;
        else if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "0")) *(int *)p = 0;
        else return fm_fail("%s: expected true or false, found '%s'", label, text);
        return FM_OK;
    case FM_OPT_ENUM: {
        int v = fm_opt_enum_value(r->names, r->nnames, text);
        if (v < 0) {
            char list[128];
            fm_opt_enum_list(r->names, r->nnames, list, sizeof list);
            return fm_fail("%s: expected %s, found '%s'", label, list, text);
        }
        *(int *)p = v;
        return FM_OK;
    }
    }
    return FM_ERR;
}
