/* hfconfig.h: HuggingFace's config.json for BERT, read and written with
 * jansson.
 *
 * Reading: every BertConfig field this program uses, with BERT's default
 * (bert-base-uncased) when absent; a field of the wrong JSON type, an
 * implausible size, an unknown hidden_act ("gelu" is the erf form, "gelu_new"
 * and "gelu_pytorch_tanh" the tanh form), a model_type other than "bert" or a
 * position_embedding_type other than "absolute" is an error naming the file
 * and the field. num_labels comes from id2label's size, else from
 * "num_labels", else 0 (no task head). Unknown fields are ignored.
 *
 * Writing: a config that transformers' AutoConfig / BertFor* load as is:
 * keys sorted, "model_type": "bert", "architectures" after the heads the
 * model has, id2label / label2id when it has a task head. */
#ifndef FM_HFCONFIG_H
#define FM_HFCONFIG_H

#include <stddef.h>

#include "config.h"

/* What config.json says beyond fm_config. */
typedef struct {
    char **id2label;       /* [nlabels] label names by id, or NULL */
    int nlabels;
    int labels_given;      /* config.json stated id2label or num_labels */
    char *finetuning_task; /* or NULL */
} fm_hfextra;

void fm_hfextra_free(fm_hfextra *x);
/* Deep copy (dst is overwritten, not freed). */
void fm_hfextra_copy(fm_hfextra *dst, const fm_hfextra *src);

/* Read path into c (and x, which may be NULL). The result passes
 * fm_config_check. with_pooler is 1, with_mlm 0 (the caller decides). */
int fm_hfconfig_read(const char *path, fm_config *c, fm_hfextra *x);
/* The same from len bytes of text; name is used in messages. */
int fm_hfconfig_parse(const char *text, size_t len, const char *name, fm_config *c, fm_hfextra *x);

/* Write c (and label names / task from x, which may be NULL) to path
 * atomically. Labels without names are written as LABEL_i, as HF does. */
int fm_hfconfig_write(const char *path, const fm_config *c, const fm_hfextra *x);
/* The JSON text (free with free()). */
char *fm_hfconfig_dumps(const fm_config *c, const fm_hfextra *x);

#endif
