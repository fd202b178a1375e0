/* controls.h: what is trained and over what: L0-close freeze sets, and the
 * paper's controls for the pre-trained weights (shuffled, random). */
#ifndef FM_CONTROLS_H
#define FM_CONTROLS_H

#include <stdint.h>

#include "model.h"

/* Freeze (trains = needs_grad = 0) the tensors named by spec, a comma-separated
 * list of: "key" (W_K of every encoder layer), "deepest:N" (every tensor of
 * the last N encoder layers), "word_embeddings", "all" (every pre-trained
 * tensor, so that only the task head trains: the paper's head-only
 * baseline), or a glob over tensor names (fnmatch, without the "bert."
 * prefix). Returns FM_ERR naming the item that
 * matches nothing or is malformed. *frozen counts the frozen elements. */
int fm_freeze(fm_layout *lay, int num_layers, const char *spec, size_t *frozen);

/* Permute each pre-trained tensor (all but the task and MLM heads) by its own
 * seeded permutation: values and norm kept, structure destroyed. */
void fm_weights_shuffle(fm_model *m, uint64_t seed);
/* Replace every pre-trained tensor (all but the heads) with BERT's random
 * initialisation from seed. */
void fm_weights_randomize(fm_model *m, uint64_t seed);

#endif
