/* config.h: a BERT model's shape and hyperparameters, as HuggingFace's
 * BertConfig names them (config.json is read and written in io/hfconfig.c). */
#ifndef FM_CONFIG_H
#define FM_CONFIG_H

typedef enum {
    FM_GELU_ERF = 0,  /* hidden_act "gelu": x * Phi(x), the exact erf form */
    FM_GELU_TANH = 1, /* hidden_act "gelu_new" (also "gelu_pytorch_tanh"): the tanh approximation */
} fm_act;

typedef struct {
    int vocab_size;              /* V */
    int hidden_size;             /* H */
    int num_hidden_layers;       /* L */
    int num_attention_heads;     /* A; head size H/A */
    int intermediate_size;       /* I, usually 4H */
    int max_position_embeddings; /* P */
    int type_vocab_size;         /* TV */
    fm_act hidden_act;
    float hidden_dropout_prob;
    float attention_probs_dropout_prob;
    float layer_norm_eps;
    float initializer_range;
    int pad_token_id;
    /* What the parameter set holds beyond the encoder. */
    int with_pooler; /* pooler.dense (needed by the task heads) */
    int num_labels;  /* task head "classifier": >= 2 classes (cross-entropy), 1 regression (MSE), 0 none */
    int with_mlm;    /* MLM head "cls.predictions.*", decoder tied to the word embeddings */
} fm_config;

/* BERT's defaults (bert-base-uncased) with no task head and no MLM head. */
void fm_config_default(fm_config *c);

/* Fill c from a preset name: tiny (L2/H128), mini (L4/H256), small (L4/H512),
 * medium (L8/H512), base (L12/H768), large (L24/H1024); A = H/64, I = 4H.
 * Returns FM_OK, or FM_ERR with a message for an unknown name. */
int fm_config_preset(const char *name, fm_config *c);

/* Check that the sizes are consistent (H divisible by A, all positive, ...).
 * Returns FM_OK, or FM_ERR with a message naming the field. */
int fm_config_check(const fm_config *c);

/* "gelu" / "gelu_new" */
const char *fm_act_name(fm_act a);

#endif
