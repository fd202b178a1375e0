/* gather.h: files assembled, tensor by tensor, from the tensors of pipeline
 * stages whose models hold their own tensors only (fm_model_alloc_stage,
 * engine.h's fm_engine_whole 0) and from the shares of tensor-parallel
 * ranks (fm_model_shard), or both.
 *
 * The writer (team rank 0: stage 0, tensor-parallel rank 0 of replica 0)
 * writes the file; the other ranks of replica 0 hold the rest of its bytes.
 * Every rank of replica 0 goes through the same list of entries in file
 * order: the writer fetches entry i while it writes, and the ranks of the
 * stage that holds it make it whole on their tensor-parallel rank 0 (a
 * tensor split over them gathered from their shares with fm_comm.tp_gather,
 * psgemr2d, into a buffer of one entry's size; a tensor held whole is its
 * own bytes), which sends it to the writer (one message) unless it is the
 * writer. So no rank holds more than one entry that is not its own, and the
 * file has the bytes one process writes. The other replicas hold the same
 * values and take no part. What a header needs before the data (each
 * entry's CRC-32C, a model's fingerprint) is computed on the whole entries
 * by the stage that holds them and combined over the stages first. Every
 * function here is collective over the ranks of a replica (replicas other
 * than 0 return at once where noted). */
#ifndef FM_GATHER_H
#define FM_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "mask.h"
#include "safetensors.h"

typedef struct {
    const fm_comm *cm;
    const fm_st_entry *e; /* [n] the file's entries (whole shapes); data: this rank's bytes (its share of a
                             split tensor) where its stage holds them */
    const int *owner;     /* [n] the stage that holds entry i */
    const fm_layout *lay; /* a tensor-parallel shard layout, or NULL: no entry is split */
    const int *tensor;    /* [n] entry i is tensor tensor[i] of lay (NULL: tensor i) */
    int n, next;          /* the writer's next entry to fetch */
    void *buf;            /* one entry made whole or received */
    size_t cap;
} fm_gather;

/* lay and tensor as in fm_gather (lay NULL: every entry whole on its stage). */
void fm_gather_init(fm_gather *g, const fm_comm *cm, const fm_st_entry *e, const int *owner, int n,
                    const fm_layout *lay, const int *tensor);
/* The writer's fm_st_fetch (safetensors.h) over a fm_gather. */
const void *fm_gather_fetch(void *ctx, int i);
/* The other ranks of replica 0: make whole and send the entries their stage
 * holds, in order. The writer (after its write, whatever came of it):
 * fetch and drop the entries its write did not fetch, so that no rank
 * waits forever. Other replicas: nothing. */
int fm_gather_finish(fm_gather *g);
void fm_gather_free(fm_gather *g);

/* crc[0..g->n): each entry's CRC-32C (of its whole bytes), computed by the
 * stage that holds it and summed over the stages (right on the writer). */
int fm_gather_crcs(fm_gather *g, uint32_t *crc);

/* modeldir.h's fm_params_fingerprint of array x of m's layout (parameters,
 * gradients) as one process holding the whole tensors computes it, each
 * stage's part continuing the previous stage's; every rank of the replica
 * gets it. */
int fm_gather_fingerprint(const fm_comm *cm, const fm_model *m, const float *x, uint64_t *fp);

/* The layout of the files of m: its whole layout under tensor parallelism,
 * else its own. */
const fm_layout *fm_gather_file_layout(const fm_model *m);

/* For a mask file: on the writer (replica 0's team rank 0), *whole (a mask
 * over fm_gather_file_layout) receives the bits of every masked tensor of
 * `sample` (over m's layout) from the stage that holds it, a split tensor's
 * gathered from the shares' bits; and *head (an array of the file layout,
 * memory for the task head only) the task head's parameters from the last
 * stage. On the other ranks both stay empty. Undo with fm_gather_mask_done. */
int fm_gather_mask(const fm_comm *cm, const fm_model *m, const fm_mask *sample, fm_mask *whole, float **head);
void fm_gather_mask_done(const fm_model *m, fm_mask *whole, float *head);

#endif
