/* gather.h: files assembled from the tensors of pipeline stages whose
 * models hold their own tensors only (fm_model_alloc_stage, engine.h's
 * fm_engine_whole 0).
 *
 * The writer (team rank 0: stage 0 of replica 0) writes the file; the other
 * stages of replica 0 hold the rest of its tensors. Every rank of replica 0
 * goes through the same list of entries in file order: the writer fetches
 * entry i while it writes (its own bytes, or one message from the stage that
 * holds it, into a buffer of one entry's size), and each other stage sends
 * the entries it holds, in the same order. So the writer never holds more
 * than one entry that is not its own, and the file has the bytes one process
 * writes. The other replicas hold the same values and take no part. What a
 * header needs before the data (each entry's CRC-32C, a model's fingerprint)
 * is computed by the stage that holds the tensor and combined over the
 * stages first. Every function here is collective over the stages of a
 * replica (replicas other than 0 return at once where noted). */
#ifndef FM_GATHER_H
#define FM_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "mask.h"
#include "safetensors.h"

typedef struct {
    const fm_comm *cm;
    const fm_st_entry *e; /* [n] the file's entries; data: this rank's bytes where it holds them */
    const int *owner;     /* [n] the stage that holds entry i */
    int n, next;          /* the writer's next entry to fetch */
    void *buf;            /* one received entry */
    size_t cap;
} fm_gather;

void fm_gather_init(fm_gather *g, const fm_comm *cm, const fm_st_entry *e, const int *owner, int n);
/* The writer's fm_st_fetch (safetensors.h) over a fm_gather. */
const void *fm_gather_fetch(void *ctx, int i);
/* Replica 0's other stages: send the entries this stage holds, in order.
 * The writer (after its write, whatever came of it): receive and drop the
 * entries its write did not fetch, so that no stage waits forever. Other
 * replicas: nothing. */
int fm_gather_finish(fm_gather *g);
void fm_gather_free(fm_gather *g);

/* crc[0..n): each entry's CRC-32C, computed by the stage that holds it and
 * summed over the stages (every stage gets them). */
int fm_gather_crcs(const fm_comm *cm, const fm_st_entry *e, const int *owner, int n, uint32_t *crc);

/* modeldir.h's fm_params_fingerprint of array x of m's layout (parameters,
 * gradients), each stage's part continuing the previous stage's; every
 * stage of the replica gets it. */
int fm_gather_fingerprint(const fm_comm *cm, const fm_model *m, const float *x, uint64_t *fp);

/* For a mask file: on the writer, the bits of every masked tensor of
 * `sample` that its model does not hold are received from their stages
 * (allocated here), and *head (an array of m's layout, memory for the task
 * head only; NULL on the other ranks) receives the task head's parameters
 * from the last stage. Undo with fm_gather_mask_done. Replica 0 only. */
int fm_gather_mask(const fm_comm *cm, const fm_model *m, fm_mask *sample, float **head);
void fm_gather_mask_done(const fm_comm *cm, const fm_model *m, fm_mask *sample, float *head);

#endif
