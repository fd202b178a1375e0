/* hfconfig.c: config.json for BERT (see hfconfig.h). */
#include "hfconfig.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"

void fm_hfextra_free(fm_hfextra *x) {
    if (!x) return;
    for (int i = 0; i < x->nlabels; i++) free(x->id2label ? x->id2label[i] : NULL);
    free(x->id2label);
    free(x->finetuning_task);
    memset(x, 0, sizeof *x);
}

void fm_hfextra_copy(fm_hfextra *dst, const fm_hfextra *src) {
    memset(dst, 0, sizeof *dst);
    if (!src) return;
    dst->labels_given = src->labels_given;
    dst->nlabels = src->nlabels;
    if (src->id2label) {
        dst->id2label = fm_xcalloc((size_t)src->nlabels, sizeof *dst->id2label);
        for (int i = 0; i < src->nlabels; i++)
            dst->id2label[i] = src->id2label[i] ? fm_xstrdup(src->id2label[i]) : NULL;
    }
    if (src->finetuning_task) dst->finetuning_task = fm_xstrdup(src->finetuning_task);
}

static const char *kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* An integer field in [lo, hi]; absent (or null when null_ok) keeps *out. */
static int get_int(const char *path, json_t *root, const char *field, long long lo, long long hi, int null_ok,
                   int *out) {
    json_t *v = json_object_get(root, field);
    if (!v || (null_ok && json_is_null(v))) return FM_OK;
    if (!json_is_integer(v)) return fm_fail("%s: field \"%s\" is %s, expected an integer", path, field, kind(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fm_fail("%s: field \"%s\" is %lld, expected an integer in [%lld, %lld]", path, field, x, lo, hi);
    *out = (int)x;
    return FM_OK;
}

/* A number field (integer or real, finite, within float range); absent keeps *out. */
static int get_float(const char *path, json_t *root, const char *field, float *out) {
    json_t *v = json_object_get(root, field);
    if (!v) return FM_OK;
    if (!json_is_number(v)) return fm_fail("%s: field \"%s\" is %s, expected a number", path, field, kind(v));
    double d = json_number_value(v);
    if (!isfinite(d) || fabs(d) > FLT_MAX)
        return fm_fail("%s: field \"%s\" is %g, outside the range of a float", path, field, d);
    *out = (float)d;
    return FM_OK;
}

/* A string field; absent (or null when null_ok) gives NULL. */
static int get_string(const char *path, json_t *root, const char *field, int null_ok, const char **out) {
    json_t *v = json_object_get(root, field);
    *out = NULL;
    if (!v || (null_ok && json_is_null(v))) return FM_OK;
    if (!json_is_string(v)) return fm_fail("%s: field \"%s\" is %s, expected a string", path, field, kind(v));
    *out = json_string_value(v);
    return FM_OK;
}

#define MAX_LABELS 65536

static int read_labels(const char *path, json_t *root, fm_config *c, fm_hfextra *x) {
    json_t *map = json_object_get(root, "id2label");
    int num = -1;
    if (get_int(path, root, "num_labels", 0, MAX_LABELS, 1, &num) != FM_OK) return FM_ERR;
    if (map && !json_is_null(map)) {
        if (!json_is_object(map))
            return fm_fail("%s: field \"id2label\" is %s, expected an object {\"0\": \"name\", ...}", path, kind(map));
        size_t n = json_object_size(map);
        if (n > MAX_LABELS) return fm_fail("%s: field \"id2label\" has %zu labels (at most %d)", path, n, MAX_LABELS);
        if (num >= 0 && (size_t)num != n)
            return fm_fail("%s: field \"num_labels\" is %d but \"id2label\" has %zu labels", path, num, n);
        char **names = fm_xcalloc(n ? n : 1, sizeof *names);
        const char *k;
        json_t *v;
        int rc = FM_OK;
        json_object_foreach(map, k, v) {
            char *end;
            errno = 0;
            long id = strtol(k, &end, 10);
            if (!*k || *end || errno || id < 0 || (size_t)id >= n || names[id]) {
                rc = fm_fail("%s: field \"id2label\": key \"%s\" is not a distinct label id in [0, %zu)", path, k, n);
                break;
            }
            if (!json_is_string(v)) {
                rc = fm_fail("%s: field \"id2label\": label %ld is %s, expected a string", path, id, kind(v));
                break;
            }
            names[id] = fm_xstrdup(json_string_value(v));
        }
        if (rc != FM_OK || !x) {
            for (size_t i = 0; i < n; i++) free(names[i]);
            free(names);
            if (rc != FM_OK) return rc;
        } else {
            x->id2label = names;
            x->nlabels = (int)n;
        }
        c->num_labels = (int)n;
        if (x) x->labels_given = 1;
    } else if (num >= 0) {
        c->num_labels = num;
        if (x) x->labels_given = 1;
    }
    return FM_OK;
}

static int read_root(const char *path, json_t *root, fm_config *c, fm_hfextra *x) {
    if (!json_is_object(root)) return fm_fail("%s: expected a JSON object, found %s", path, kind(root));
    const char *s;
    if (get_string(path, root, "model_type", 0, &s) != FM_OK) return FM_ERR;
    if (s && strcmp(s, "bert") != 0) return fm_fail("%s: field \"model_type\" is \"%s\", expected \"bert\"", path, s);
    if (get_string(path, root, "position_embedding_type", 1, &s) != FM_OK) return FM_ERR;
    if (s && strcmp(s, "absolute") != 0)
        return fm_fail("%s: field \"position_embedding_type\" is \"%s\", only \"absolute\" is supported", path, s);

#define INT(f, lo, hi, nul) \
    if (get_int(path, root, #f, lo, hi, nul, &c->f) != FM_OK) return FM_ERR
    INT(vocab_size, 1, 1 << 24, 0);
    INT(hidden_size, 1, 1 << 16, 0);
    INT(num_hidden_layers, 1, 1024, 0);
    INT(num_attention_heads, 1, 1 << 16, 0);
    INT(intermediate_size, 1, 1 << 20, 0);
    INT(max_position_embeddings, 1, 1 << 20, 0);
    INT(type_vocab_size, 1, 1 << 16, 0);
    INT(pad_token_id, 0, 1 << 24, 1);
#undef INT
#define FLT(f) \
    if (get_float(path, root, #f, &c->f) != FM_OK) return FM_ERR
    FLT(hidden_dropout_prob);
    FLT(attention_probs_dropout_prob);
    FLT(initializer_range);
    FLT(layer_norm_eps);
#undef FLT
    if (!(c->initializer_range >= 0))
        return fm_fail("%s: field \"initializer_range\" is %g, expected a non-negative number", path,
                       c->initializer_range);

    if (get_string(path, root, "hidden_act", 0, &s) != FM_OK) return FM_ERR;
    if (s) {
        if (strcmp(s, "gelu") == 0) {
            c->hidden_act = FM_GELU_ERF;
        } else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0) {
            c->hidden_act = FM_GELU_TANH;
        } else {
            return fm_fail("%s: field \"hidden_act\" is \"%s\", expected \"gelu\", \"gelu_new\" or "
                           "\"gelu_pytorch_tanh\"",
                           path, s);
        }
    }
    if (get_string(path, root, "finetuning_task", 1, &s) != FM_OK) return FM_ERR;
    if (s && x) x->finetuning_task = fm_xstrdup(s);
    if (read_labels(path, root, c, x) != FM_OK) return FM_ERR;
    if (fm_config_check(c) != FM_OK) return fm_fail_prefix("%s: ", path);
    return FM_OK;
}

int fm_hfconfig_parse(const char *text, size_t len, const char *name, fm_config *c, fm_hfextra *x) {
    fm_config_default(c);
    if (x) memset(x, 0, sizeof *x);
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) return fm_fail("%s:%d:%d: invalid JSON: %s", name, err.line, err.column, err.text);
    int rc = read_root(name, root, c, x);
    json_decref(root);
    if (rc != FM_OK && x) fm_hfextra_free(x);
    return rc;
}

int fm_hfconfig_read(const char *path, fm_config *c, fm_hfextra *x) {
    char *text;
    size_t len;
    if (fm_read_file(path, &text, &len) != FM_OK) return FM_ERR;
    int rc = fm_hfconfig_parse(text, len, path, c, x);
    free(text);
    return rc;
}

/* A JSON real that prints as the shortest decimal that reads back as f. */
static json_t *real_of(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

char *fm_hfconfig_dumps(const fm_config *c, const fm_hfextra *x) {
    json_t *o = json_object(); /* keys inserted in sorted order, as HF writes them */
    json_t *arch = json_array();
    json_array_append_new(arch, json_string(c->num_labels > 0 ? "BertForSequenceClassification"
                                            : c->with_mlm     ? "BertForMaskedLM"
                                                              : "BertModel"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "attention_probs_dropout_prob", real_of(c->attention_probs_dropout_prob));
    json_object_set_new(o, "classifier_dropout", json_null());
    if (x && x->finetuning_task) json_object_set_new(o, "finetuning_task", json_string(x->finetuning_task));
    json_object_set_new(o, "hidden_act", json_string(c->hidden_act == FM_GELU_TANH ? "gelu_new" : "gelu"));
    json_object_set_new(o, "hidden_dropout_prob", real_of(c->hidden_dropout_prob));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_t *id2label = NULL, *label2id = NULL;
    if (c->num_labels > 0) {
        id2label = json_object();
        label2id = json_object();
        int named = x && x->id2label && x->nlabels == c->num_labels;
        for (int i = 0; i < c->num_labels; i++) {
            char key[32], def[32];
            snprintf(key, sizeof key, "%d", i);
            snprintf(def, sizeof def, "LABEL_%d", i);
            const char *name = named && x->id2label[i] ? x->id2label[i] : def;
            json_t *s = json_string(name);
            if (!s) s = json_string(def); /* not UTF-8: fall back to HF's default name */
            json_object_set_new(id2label, key, s);
            json_object_set_new(label2id, json_string_value(s), json_integer(i));
        }
        json_object_set_new(o, "id2label", id2label);
    }
    json_object_set_new(o, "initializer_range", real_of(c->initializer_range));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
    if (label2id) json_object_set_new(o, "label2id", label2id);
    json_object_set_new(o, "layer_norm_eps", real_of(c->layer_norm_eps));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_position_embeddings));
    json_object_set_new(o, "model_type", json_string("bert"));
    json_object_set_new(o, "num_attention_heads", json_integer(c->num_attention_heads));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->num_hidden_layers));
    json_object_set_new(o, "pad_token_id", json_integer(c->pad_token_id));
    json_object_set_new(o, "position_embedding_type", json_string("absolute"));
    if (c->num_labels > 0)
        json_object_set_new(o, "problem_type",
                            json_string(c->num_labels == 1 ? "regression" : "single_label_classification"));
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    json_object_set_new(o, "type_vocab_size", json_integer(c->type_vocab_size));
    json_object_set_new(o, "use_cache", json_true());
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *out = fm_xmalloc(n + 2);
    memcpy(out, s, n);
    out[n] = '\n';
    out[n + 1] = '\0';
    free(s);
    return out;
}

int fm_hfconfig_write(const char *path, const fm_config *c, const fm_hfextra *x) {
    char *s = fm_hfconfig_dumps(c, x);
    if (!s) return fm_fail("%s: cannot encode the configuration", path);
    int rc = fm_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}
