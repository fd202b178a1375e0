/* options.c: options.json and the other option files, from the tables (see options.h). */
#include "options.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "runfiles.h"

static json_t *row_json(const fm_opt *r, const void *obj) {
    const void *p = fm_opt_cptr(r, obj);
    switch (r->kind) {
    case FM_OPT_STR: {
        const char *s = *(const char *const *)p;
        return s ? json_string(s) : json_null();
    }
    case FM_OPT_LIST: {
        const char *const *list = *(const char *const *const *)p;
        const int n = *(const int *)((const char *)obj + r->count_offset);
        json_t *a = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(a, json_string(list[i]));
        return a;
    }
    case FM_OPT_F64: return json_real(*(const double *)p);
    case FM_OPT_NOFLAG:
    case FM_OPT_FLAG: return json_boolean(*(const int *)p);
    case FM_OPT_ENUM: {
        int v = *(const int *)p;
        return v >= 0 && v < r->nnames ? json_string(r->names[v]) : json_null();
    }
    case FM_OPT_INT:
    case FM_OPT_I64:
    case FM_OPT_U64: return json_integer((json_int_t)fm_opt_get_int(r, obj));
    }
    return json_null();
}

json_t *fm_opts_to_json(const fm_opt *table, int n, const void *obj) {
    json_t *j = json_object();
    for (int i = 0; i < n; i++)
        if (table[i].key) json_object_set_new(j, table[i].key, row_json(&table[i], obj));
    return j;
}

char *fm_ft_opts_json(const fm_ft_opts *o) {
    json_t *j = fm_opts_to_json(fm_ft_opt_table, fm_ft_opt_count, o);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(j);
    return s;
}

char *fm_opt_value_text(const fm_opt *r, const void *obj) {
    json_t *v = row_json(r, obj);
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(v);
    return s;
}

const char *const *fm_ft_opts_unused(const char *mode) {
    static const char *mask_keys[64];
    static const char *const none[] = {NULL};
    if (!mode || !strcmp(mode, "supermask") || (strcmp(mode, "full") && strcmp(mode, "freeze"))) return none;
    if (!mask_keys[0]) {
        int n = 0;
        for (int i = 0; i < fm_ft_opt_count && n < 63; i++)
            if ((fm_ft_opt_table[i].flags & FM_OPT_G_MASK) && fm_ft_opt_table[i].key)
                mask_keys[n++] = fm_ft_opt_table[i].key;
        mask_keys[n] = NULL;
    }
    return mask_keys;
}

const fm_opt *fm_ft_opts_first_difference(const fm_ft_opts *a, const fm_ft_opts *b, const unsigned char *given) {
    for (int i = 0; i < fm_ft_opt_count; i++) {
        const fm_opt *r = &fm_ft_opt_table[i];
        if (!(r->flags & FM_OPT_RESUME) || (given && !given[i])) continue;
        json_t *x = row_json(r, a), *y = row_json(r, b);
        int same = json_equal(x, y);
        json_decref(x);
        json_decref(y);
        if (!same) return r;
    }
    return NULL;
}

/* Row r of obj from JSON value v; FM_ERR with what was expected. */
static int row_from_json(const fm_opt *r, void *obj, json_t *v) {
    void *p = fm_opt_ptr(r, obj);
    switch (r->kind) {
    case FM_OPT_STR:
        if (json_is_null(v) && !(r->flags & FM_OPT_REQUIRED)) {
            *(const char **)p = NULL;
            return FM_OK;
        }
        if (!json_is_string(v))
            return fm_fail(r->flags & FM_OPT_REQUIRED ? "expected a string" : "expected a string or null");
        *(const char **)p = json_string_value(v);
        return FM_OK;
    case FM_OPT_F64:
        if (!json_is_number(v)) return fm_fail("expected a number");
        *(double *)p = json_number_value(v);
        return FM_OK;
    case FM_OPT_INT:
    case FM_OPT_I64:
    case FM_OPT_U64:
        if (!json_is_integer(v)) return fm_fail("expected an integer");
        fm_opt_set_int(r, obj, (long long)json_integer_value(v));
        return FM_OK;
    case FM_OPT_NOFLAG:
    case FM_OPT_FLAG:
        if (!json_is_boolean(v)) return fm_fail("expected true or false");
        *(int *)p = json_is_true(v);
        return FM_OK;
    case FM_OPT_ENUM: {
        int e = fm_opt_enum_value(r->names, r->nnames, json_string_value(v));
        if (e < 0) {
            char list[128];
            fm_opt_enum_list(r->names, r->nnames, list, sizeof list);
            return fm_fail("expected %s", list);
        }
        *(int *)p = e;
        return FM_OK;
    }
    case FM_OPT_LIST: break;
    }
    return fm_fail("cannot be read back");
}

int fm_ft_opts_load(const char *run_dir, fm_ft_opts *o, void **keep) {
    char *path = fm_path_join(run_dir, "options.json");
    json_t *j;
    if (fm_json_read(path, &j) != FM_OK) {
        free(path);
        return FM_ERR;
    }
    fm_ft_opts_default(o);
    int rc = FM_OK;
    if (!json_is_object(j)) rc = fm_fail("%s: expected the options of a finemask train run, a JSON object", path);
    /* A key that is absent keeps its default, unless the option is required:
     * run directories written before an option existed ran with what is now
     * its default, and resume as they are. */
    size_t nkeys = 0;
    for (int i = 0; i < fm_ft_opt_count && rc == FM_OK; i++) {
        const fm_opt *r = &fm_ft_opt_table[i];
        if (!r->key) continue;
        json_t *v = json_object_get(j, r->key);
        if (v) nkeys++;
        if (!v && (r->flags & FM_OPT_REQUIRED))
            rc = fm_fail("%s: expected the options of a finemask train run: no key \"%s\"", path, r->key);
        else if (v && row_from_json(r, o, v) != FM_OK)
            rc = fm_fail_prefix("%s: expected the options of a finemask train run: \"%s\": ", path, r->key);
    }
    if (rc == FM_OK && json_object_size(j) != nkeys) {
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v) {
            int known = 0;
            for (int i = 0; i < fm_ft_opt_count; i++)
                known |= fm_ft_opt_table[i].key && !strcmp(fm_ft_opt_table[i].key, key);
            if (!known) {
                rc = fm_fail("%s: expected the options of a finemask train run: unknown key \"%s\"", path, key);
                break;
            }
        }
    }
    free(path);
    if (rc != FM_OK) {
        json_decref(j);
        return rc;
    }
    o->out_dir = run_dir;
    *keep = j;
    return FM_OK;
}

json_t *fm_ft_hyper_json(const fm_ft_opts *o) {
    json_t *h = json_object();
    for (int i = 0; i < fm_ft_opt_count; i++)
        if (fm_ft_opt_table[i].hyper)
            json_object_set_new(h, fm_ft_opt_table[i].hyper, row_json(&fm_ft_opt_table[i], o));
    return h;
}

char *fm_pt_opts_json(const fm_pt_opts *o, const char *corpus_content) {
    json_t *j = json_object();
    for (int i = 0; i < fm_pt_opt_count; i++) {
        const fm_opt *r = &fm_pt_opt_table[i];
        if (!r->key) continue;
        /* a run from a random initialisation records no "init" (as before it existed) */
        if (!strcmp(r->key, "init") && !o->init) continue;
        json_object_set_new(j, r->key, row_json(r, o));
        if (r->kind == FM_OPT_LIST && !strcmp(r->field, "corpus"))
            json_object_set_new(j, "corpus-content", json_string(corpus_content));
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}
