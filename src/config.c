/* config.c: BERT presets and consistency checks (see config.h). */
#include "config.h"

#include <string.h>

#include "fm.h"

void fm_config_default(fm_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 30522;
    c->hidden_size = 768;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 12;
    c->intermediate_size = 3072;
    c->max_position_embeddings = 512;
    c->type_vocab_size = 2;
    c->hidden_act = FM_GELU_ERF;
    c->hidden_dropout_prob = 0.1f;
    c->attention_probs_dropout_prob = 0.1f;
    c->layer_norm_eps = 1e-12f;
    c->initializer_range = 0.02f;
    c->pad_token_id = 0;
    c->with_pooler = 1;
    c->num_labels = 0;
    c->with_mlm = 0;
}

int fm_config_preset(const char *name, fm_config *c) {
    static const struct {
        const char *name;
        int layers, hidden;
    } presets[] = {
        {"tiny", 2, 128}, {"mini", 4, 256},  {"small", 4, 512},
        {"medium", 8, 512}, {"base", 12, 768}, {"large", 24, 1024},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) == 0) {
            fm_config_default(c);
            c->num_hidden_layers = presets[i].layers;
            c->hidden_size = presets[i].hidden;
            c->num_attention_heads = presets[i].hidden / 64;
            c->intermediate_size = 4 * presets[i].hidden;
            return FM_OK;
        }
    }
    return fm_fail("unknown model preset '%s' (expected tiny, mini, small, medium, base or large)", name);
}

int fm_config_check(const fm_config *c) {
#define POSITIVE(f) \
    if (c->f <= 0) return fm_fail("config: %s must be positive, found %d", #f, c->f)
    POSITIVE(vocab_size);
    POSITIVE(hidden_size);
    POSITIVE(num_hidden_layers);
    POSITIVE(num_attention_heads);
    POSITIVE(intermediate_size);
    POSITIVE(max_position_embeddings);
    POSITIVE(type_vocab_size);
#undef POSITIVE
    if (c->hidden_size % c->num_attention_heads != 0)
        return fm_fail("config: hidden_size %d is not a multiple of num_attention_heads %d", c->hidden_size,
                       c->num_attention_heads);
    if (c->num_labels < 0) return fm_fail("config: num_labels must be >= 0, found %d", c->num_labels);
    if (c->num_labels > 0 && !c->with_pooler) return fm_fail("config: a task head needs the pooler");
    if (!(c->hidden_dropout_prob >= 0 && c->hidden_dropout_prob < 1))
        return fm_fail("config: hidden_dropout_prob must be in [0, 1), found %g", c->hidden_dropout_prob);
    if (!(c->attention_probs_dropout_prob >= 0 && c->attention_probs_dropout_prob < 1))
        return fm_fail("config: attention_probs_dropout_prob must be in [0, 1), found %g",
                       c->attention_probs_dropout_prob);
    if (!(c->layer_norm_eps > 0)) return fm_fail("config: layer_norm_eps must be positive, found %g", c->layer_norm_eps);
    if (c->pad_token_id < 0 || c->pad_token_id >= c->vocab_size)
        return fm_fail("config: pad_token_id %d is outside the vocabulary (%d)", c->pad_token_id, c->vocab_size);
    return FM_OK;
}

const char *fm_act_name(fm_act a) { return a == FM_GELU_TANH ? "gelu_new" : "gelu"; }
