/* tokjson.c: tokenizer.json and tokenizer_config.json (see tokjson.h). */
#include "tokjson.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fm.h"
#include "vocab.h"

static const char *kind(const json_t *v) {
    if (!v) return "absent";
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

/* A boolean field of obj (named where for messages); absent keeps *out. */
static int get_bool(const char *name, const char *where, json_t *obj, const char *field, int *out) {
    json_t *v = json_object_get(obj, field);
    if (!v) return FM_OK;
    if (!json_is_boolean(v))
        return fm_fail("%s: %s%s is %s, expected true or false", name, where, field, kind(v));
    *out = json_is_true(v);
    return FM_OK;
}

/* A boolean-or-null field: null gives -1; absent keeps *out. */
static int get_tristate(const char *name, const char *where, json_t *obj, const char *field, int *out) {
    json_t *v = json_object_get(obj, field);
    if (v && json_is_null(v)) {
        *out = -1;
        return FM_OK;
    }
    if (v && !json_is_boolean(v))
        return fm_fail("%s: %s%s is %s, expected true, false or null", name, where, field, kind(v));
    return get_bool(name, where, obj, field, out);
}

/* A string field without U+0000; absent gives *out = dflt. */
static int get_str(const char *name, const char *where, json_t *obj, const char *field, const char *dflt,
                   const char **out) {
    json_t *v = json_object_get(obj, field);
    *out = dflt;
    if (!v) return FM_OK;
    if (!json_is_string(v)) return fm_fail("%s: %s%s is %s, expected a string", name, where, field, kind(v));
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fm_fail("%s: %s%s contains U+0000", name, where, field);
    *out = json_string_value(v);
    return FM_OK;
}

/* The "type" of a component, or NULL when the component is null. */
static int get_type(const char *name, json_t *root, const char *field, json_t **obj, const char **type) {
    *obj = json_object_get(root, field);
    *type = NULL;
    if (!*obj || json_is_null(*obj)) return FM_OK;
    if (!json_is_object(*obj)) return fm_fail("%s: %s is %s, expected an object", name, field, kind(*obj));
    json_t *ty = json_object_get(*obj, "type");
    if (!json_is_string(ty)) return fm_fail("%s: %s.type is %s, expected a string", name, field, kind(ty));
    *type = json_string_value(ty);
    return FM_OK;
}

static int read_normalizer(const char *name, json_t *root, fm_tokenizer_opts *o) {
    json_t *n;
    const char *type;
    if (get_type(name, root, "normalizer", &n, &type) != FM_OK) return FM_ERR;
    if (!type) { /* no normalizer: the text goes to the pre-tokenizer as it is */
        o->clean_text = o->tokenize_chinese_chars = o->do_lower_case = o->strip_accents = 0;
        return FM_OK;
    }
    if (strcmp(type, "BertNormalizer") != 0)
        return fm_fail("%s: normalizer.type is \"%s\", expected \"BertNormalizer\" (finemask reads BERT's "
                       "WordPiece tokenizers)",
                       name, type);
    /* The defaults of HuggingFace's BertNormalizer. */
    o->clean_text = o->tokenize_chinese_chars = o->do_lower_case = 1;
    o->strip_accents = -1;
    if (get_bool(name, "normalizer.", n, "clean_text", &o->clean_text) != FM_OK ||
        get_bool(name, "normalizer.", n, "handle_chinese_chars", &o->tokenize_chinese_chars) != FM_OK ||
        get_tristate(name, "normalizer.", n, "strip_accents", &o->strip_accents) != FM_OK ||
        get_bool(name, "normalizer.", n, "lowercase", &o->do_lower_case) != FM_OK)
        return FM_ERR;
    return FM_OK;
}

/* One item of a TemplateProcessing template: a special token's name (*seq
 * NULL) or a sequence's id ("A", "B"); *type_id its token type. */
static int template_item(const char *name, const char *where, json_t *item, const char **special, const char **seq,
                         long long *type_id) {
    json_t *sp = json_object_get(item, "SpecialToken"), *sq = json_object_get(item, "Sequence");
    json_t *body = sp ? sp : sq;
    *special = *seq = NULL;
    if (!json_is_object(item) || !json_is_object(body))
        return fm_fail("%s: %s is %s, expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}", name, where,
                       kind(item));
    json_t *id = json_object_get(body, "id"), *ty = json_object_get(body, "type_id");
    if (!json_is_string(id)) return fm_fail("%s: %s: id is %s, expected a string", name, where, kind(id));
    if (ty && !json_is_integer(ty)) return fm_fail("%s: %s: type_id is %s, expected an integer", name, where, kind(ty));
    *type_id = ty ? json_integer_value(ty) : 0;
    if (sp)
        *special = json_string_value(id);
    else
        *seq = json_string_value(id);
    return FM_OK;
}

/* The post-processor must build [CLS] A [SEP] and [CLS] A [SEP] B [SEP] with
 * token types 0 then 1: the classifier encoding of fm_encode_ids. */
static int read_post_processor(const char *name, json_t *root, const char **cls, const char **sep) {
    json_t *p;
    const char *type;
    if (get_type(name, root, "post_processor", &p, &type) != FM_OK) return FM_ERR;
    if (!type) return FM_OK;
    if (!strcmp(type, "BertProcessing")) {
        const char *names[2];
        const char *keys[2] = {"cls", "sep"};
        for (int k = 0; k < 2; k++) {
            json_t *v = json_object_get(p, keys[k]);
            if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)))
                return fm_fail("%s: post_processor.%s is %s, expected [\"TOKEN\", ID]", name, keys[k], kind(v));
            names[k] = json_string_value(json_array_get(v, 0));
        }
        *cls = names[0];
        *sep = names[1];
        return FM_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return fm_fail("%s: post_processor.type is \"%s\", expected \"TemplateProcessing\" or \"BertProcessing\"",
                       name, type);
    static const char *const want = "[CLS] A [SEP] (types 0 0 0) and [CLS] A [SEP] B [SEP] (types 0 0 0 1 1)";
    json_t *single = json_object_get(p, "single"), *pair = json_object_get(p, "pair");
    if (!json_is_array(single) || json_array_size(single) != 3 || !json_is_array(pair) || json_array_size(pair) != 5)
        return fm_fail("%s: post_processor: the single and pair templates must be %s", name, want);
    const char *sp[5], *sq[5];
    long long ty[5];
    static const char *const seq_want[5] = {NULL, "A", NULL, "B", NULL};
    static const int type_want[5] = {0, 0, 0, 1, 1};
    for (int which = 0; which < 2; which++) {
        json_t *tpl = which ? pair : single;
        for (size_t i = 0; i < json_array_size(tpl); i++) {
            char where[64];
            snprintf(where, sizeof where, "post_processor.%s[%zu]", which ? "pair" : "single", i);
            if (template_item(name, where, json_array_get(tpl, i), &sp[i], &sq[i], &ty[i]) != FM_OK) return FM_ERR;
            int ok = seq_want[i] ? sq[i] && !strcmp(sq[i], seq_want[i]) : sp[i] != NULL;
            if (!ok || ty[i] != type_want[i])
                return fm_fail("%s: %s does not fit: the templates must be %s", name, where, want);
        }
        if (strcmp(sp[2], which ? sp[4] : sp[2]) != 0)
            return fm_fail("%s: post_processor.pair uses two separators, '%s' and '%s' (expected %s)", name, sp[2],
                           sp[4], want);
        if (which && (strcmp(sp[0], *cls) || strcmp(sp[2], *sep)))
            return fm_fail("%s: post_processor: single and pair templates use different special tokens", name);
        *cls = sp[0];
        *sep = sp[2];
    }
    return FM_OK;
}

/* The WordPiece model's vocabulary: ids 0..n-1 each once, into *v in id order,
 * followed by the added tokens whose ids come after. */
static int read_vocab(const char *name, json_t *model, json_t *added, fm_vocab *v) {
    json_t *map = json_object_get(model, "vocab");
    if (!json_is_object(map)) return fm_fail("%s: model.vocab is %s, expected an object {\"token\": id}", name, kind(map));
    size_t n = json_object_size(map), nadded = json_is_array(added) ? json_array_size(added) : 0;
    if (n == 0) return fm_fail("%s: model.vocab is empty", name);
    if (n > (1u << 24)) return fm_fail("%s: model.vocab has %zu tokens, more than a vocabulary can have here", name, n);
    const char **byid = fm_xcalloc(n + nadded, sizeof *byid);
    int rc = FM_OK;
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || (size_t)json_integer_value(val) >= n) {
            rc = fm_fail("%s: model.vocab[\"%.100s\"] is %s%s, expected an id in [0, %zu)", name, key, kind(val),
                         json_is_integer(val) ? " out of range" : "", n);
            break;
        }
        size_t id = (size_t)json_integer_value(val);
        if (byid[id]) {
            rc = fm_fail("%s: model.vocab gives id %zu to both \"%.100s\" and \"%.100s\" (expected each id once)", name,
                         id, byid[id], key);
            break;
        }
        byid[id] = key;
    }
    /* Added tokens: an id inside the vocabulary must name the same token;
     * ids past it extend it, in order, without gaps. */
    size_t total = n;
    for (size_t i = 0; rc == FM_OK && i < nadded; i++) {
        json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        const char *content = json_string_value(json_object_get(a, "content"));
        if (!json_is_integer(id) || json_integer_value(id) < 0 || !content) {
            rc = fm_fail("%s: added_tokens[%zu] needs an integer \"id\" >= 0 and a string \"content\"", name, i);
            break;
        }
        size_t k = (size_t)json_integer_value(id);
        if (k < n) {
            if (strcmp(byid[k], content) != 0)
                rc = fm_fail("%s: added_tokens[%zu] \"%.100s\" has id %zu, which model.vocab gives to \"%.100s\"", name,
                             i, content, k, byid[k]);
            continue;
        }
        if (k >= n + nadded || byid[k]) {
            rc = fm_fail("%s: added_tokens[%zu] \"%.100s\": id %zu is not the next free id after model.vocab's %zu "
                         "tokens",
                         name, i, content, k, n);
            break;
        }
        byid[k] = content;
        if (k + 1 > total) total = k + 1;
    }
    fm_vocab_init(v);
    for (size_t id = 0; rc == FM_OK && id < total; id++) {
        if (!byid[id]) {
            rc = id < n ? fm_fail("%s: model.vocab has no token with id %zu (expected ids 0 to %zu)", name, id, n - 1)
                        : fm_fail("%s: added_tokens skip id %zu (expected the ids after model.vocab without gaps)",
                                  name, id);
            break;
        }
        if (fm_vocab_add(v, byid[id], strlen(byid[id])) < 0)
            rc = fm_fail("%s: added token \"%.100s\" (id %zu) is also in model.vocab with id %d", name, byid[id], id,
                         (int)fm_vocab_find(v, byid[id], strlen(byid[id])));
    }
    free(byid);
    if (rc != FM_OK) fm_vocab_free(v);
    return rc;
}

static int read_root(fm_tokenizer *t, const char *name, json_t *root, const fm_tokenizer_opts *base) {
    if (!json_is_object(root)) return fm_fail("%s: the top level is %s, expected an object", name, kind(root));
    fm_tokenizer_opts o = base ? *base : fm_tokenizer_default_opts();
    fm_tokenizer_spec spec = {0};
    json_t *model;
    const char *type;
    if (get_type(name, root, "model", &model, &type) != FM_OK) return FM_ERR;
    if (!model || json_is_null(model)) return fm_fail("%s: no model (expected a WordPiece model)", name);
    if (strcmp(type, "WordPiece") != 0)
        return fm_fail("%s: model.type is \"%s\", expected \"WordPiece\" (finemask reads BERT's tokenizers)", name,
                       type);
    if (get_str(name, "model.", model, "unk_token", "[UNK]", &spec.unk_token) != FM_OK ||
        get_str(name, "model.", model, "continuing_subword_prefix", "##", &spec.continuing_subword_prefix) != FM_OK)
        return FM_ERR;
    json_t *mx = json_object_get(model, "max_input_chars_per_word");
    if (mx && !json_is_null(mx)) {
        if (!json_is_integer(mx) || json_integer_value(mx) < 1 || json_integer_value(mx) > 1000000000)
            return fm_fail("%s: model.max_input_chars_per_word is %s, expected an integer >= 1", name, kind(mx));
        o.max_input_chars_per_word = (int)json_integer_value(mx);
    } else {
        o.max_input_chars_per_word = 100;
    }
    if (read_normalizer(name, root, &o) != FM_OK) return FM_ERR;
    json_t *pre;
    if (get_type(name, root, "pre_tokenizer", &pre, &type) != FM_OK) return FM_ERR;
    if (!type || strcmp(type, "BertPreTokenizer") != 0)
        return fm_fail("%s: pre_tokenizer is %s%s%s, expected {\"type\": \"BertPreTokenizer\"}", name,
                       type ? "of type \"" : kind(pre), type ? type : "", type ? "\"" : "");
    if (read_post_processor(name, root, &spec.cls_token, &spec.sep_token) != FM_OK) return FM_ERR;
    json_t *pad = json_object_get(root, "padding");
    if (json_is_object(pad) && get_str(name, "padding.", pad, "pad_token", NULL, &spec.pad_token) != FM_OK)
        return FM_ERR;

    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added))
        return fm_fail("%s: added_tokens is %s, expected a list", name, kind(added));
    size_t na = json_is_array(added) ? json_array_size(added) : 0;
    const char **content = fm_xcalloc(na + 1, sizeof *content);
    int *flags = fm_xcalloc(3 * (na + 1), sizeof *flags);
    int rc = FM_OK;
    for (size_t i = 0; rc == FM_OK && i < na; i++) {
        json_t *a = json_array_get(added, i);
        char where[48];
        snprintf(where, sizeof where, "added_tokens[%zu].", i);
        if (!json_is_object(a)) {
            rc = fm_fail("%s: added_tokens[%zu] is %s, expected an object", name, i, kind(a));
            break;
        }
        int special = 0, normalized = -1;
        if (get_str(name, where, a, "content", NULL, &content[i]) != FM_OK ||
            get_bool(name, where, a, "special", &special) != FM_OK ||
            get_bool(name, where, a, "normalized", &normalized) != FM_OK ||
            get_bool(name, where, a, "lstrip", &flags[na + 1 + i]) != FM_OK ||
            get_bool(name, where, a, "rstrip", &flags[2 * (na + 1) + i]) != FM_OK) {
            rc = FM_ERR;
            break;
        }
        if (!content[i] || !*content[i]) {
            rc = fm_fail("%s: %scontent is %s, expected the token's text", name, where,
                         content[i] ? "empty" : "absent");
            break;
        }
        /* As in HuggingFace's files: unless said, a special token is matched
         * in the raw text and any other in the normalized text. */
        flags[i] = normalized >= 0 ? normalized : !special;
    }
    fm_vocab v;
    if (rc == FM_OK) rc = read_vocab(name, model, added, &v);
    if (rc == FM_OK) {
        spec.nadded = (int)na;
        spec.added_content = content;
        spec.added_normalized = flags;
        spec.added_lstrip = flags + na + 1;
        spec.added_rstrip = flags + 2 * (na + 1);
        rc = fm_tokenizer_init_spec(t, &v, &o, &spec);
        if (rc != FM_OK) {
            fm_tokenizer_free(t);
            fm_fail_prefix("%s: ", name);
        }
    }
    free(content);
    free(flags);
    return rc;
}

int fm_tokenizer_json_parse(fm_tokenizer *t, const char *name, const char *data, size_t len,
                            const fm_tokenizer_opts *base) {
    memset(t, 0, sizeof *t);
    json_error_t err;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) return fm_fail("%s:%d:%d: invalid JSON: %s", name, err.line, err.column, err.text);
    int rc = read_root(t, name, root, base);
    json_decref(root);
    return rc;
}

int fm_tokenizer_json_load(fm_tokenizer *t, const char *path, const fm_tokenizer_opts *base) {
    char *data;
    size_t len;
    memset(t, 0, sizeof *t);
    if (fm_read_file(path, &data, &len) != FM_OK) return FM_ERR;
    int rc = fm_tokenizer_json_parse(t, path, data, len, base);
    free(data);
    return rc;
}

int fm_tokenizer_config_parse(fm_tokenizer_opts *o, const char *name, const char *data, size_t len) {
    json_error_t err;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) return fm_fail("%s:%d:%d: invalid JSON: %s", name, err.line, err.column, err.text);
    int rc = FM_OK;
    fm_tokenizer_opts n = *o;
    if (!json_is_object(root))
        rc = fm_fail("%s: the top level is %s, expected an object", name, kind(root));
    else if (get_bool(name, "", root, "do_lower_case", &n.do_lower_case) != FM_OK ||
             get_tristate(name, "", root, "strip_accents", &n.strip_accents) != FM_OK ||
             get_bool(name, "", root, "tokenize_chinese_chars", &n.tokenize_chinese_chars) != FM_OK)
        rc = FM_ERR;
    json_decref(root);
    if (rc == FM_OK) *o = n;
    return rc;
}

static void force_case(fm_tokenizer_opts *o, int lowercase) {
    if (lowercase == 0) {
        o->do_lower_case = 0;
        o->strip_accents = 0;
    } else if (lowercase > 0) {
        o->do_lower_case = 1;
    }
}

int fm_tokenizer_load_dir(fm_tokenizer *t, const char *dir, const fm_tokenizer_opts *base, int lowercase,
                          char **source) {
    fm_tokenizer_opts o = base ? *base : fm_tokenizer_default_opts();
    char *json = fm_path_join(dir, FM_TOKENIZER_JSON);
    int rc;
    if (source) *source = NULL;
    if (fm_file_exists(json)) {
        rc = fm_tokenizer_json_load(t, json, &o);
        if (rc == FM_OK) force_case(&t->opts, lowercase);
        if (source) *source = json;
        else free(json);
        return rc;
    }
    free(json);
    char *cfg = fm_path_join(dir, FM_TOKENIZER_CONFIG), *vocab = fm_path_join(dir, "vocab.txt");
    rc = FM_OK;
    if (fm_file_exists(cfg)) {
        char *data;
        size_t len;
        rc = fm_read_file(cfg, &data, &len);
        if (rc == FM_OK) {
            rc = fm_tokenizer_config_parse(&o, cfg, data, len);
            free(data);
        }
    }
    force_case(&o, lowercase);
    if (rc == FM_OK) rc = fm_tokenizer_load(t, vocab, &o);
    else memset(t, 0, sizeof *t);
    free(cfg);
    if (source) *source = vocab;
    else free(vocab);
    return rc;
}
