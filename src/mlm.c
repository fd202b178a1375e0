/* mlm.c: packing and masked-LM corruption (see mlm.h). */
#include "mlm.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "fm.h"
#include "rng.h"

void fm_mlm_spec_default(fm_mlm_spec *s, int32_t cls_id, int32_t sep_id, int32_t pad_id, int32_t mask_id,
                         int32_t vocab_size) {
    s->cls_id = cls_id;
    s->sep_id = sep_id;
    s->pad_id = pad_id;
    s->mask_id = mask_id;
    s->vocab_size = vocab_size;
    s->prob = 0.15f;
    s->p_mask = 0.8f;
    s->p_random = 0.1f;
}

void fm_mlm_corrupt_row(int32_t *ids, int32_t *labels, const int32_t *orig, int T, uint64_t seed, uint64_t step,
                        uint32_t row, const fm_mlm_spec *s, fm_mlm_counts *counts) {
    for (int t = 0; t < T; t++) {
        int32_t x = orig[t];
        ids[t] = x;
        labels[t] = -100;
        if (x == s->cls_id || x == s->sep_id || x == s->pad_id) continue;
        if (counts) counts->tokens++;
        uint32_t w[4];
        /* one Philox block per position: words 0 and 1 decide, block 4t+2 of
         * the same stream (through fm_rng_below) draws the random token */
        fm_rng_block(seed, FM_RNG_MLM, step, row, (uint64_t)t, w);
        float u0 = (float)(w[0] >> 8) * (1.0f / 16777216.0f);
        float u1 = (float)(w[1] >> 8) * (1.0f / 16777216.0f);
        if (!(u0 < s->prob)) continue;
        labels[t] = x;
        if (counts) counts->chosen++;
        if (u1 < s->p_mask) {
            ids[t] = s->mask_id;
            if (counts) counts->masked++;
        } else if (u1 < s->p_mask + s->p_random) {
            /* words 2 and 3 as a 64-bit fraction: an unbiased-enough index in [0, V) */
            uint64_t r = ((uint64_t)w[2] << 32) | w[3];
            ids[t] = (int32_t)(((unsigned __int128)r * (uint32_t)s->vocab_size) >> 64);
            if (counts) counts->random++;
        } else if (counts) {
            counts->kept++;
        }
    }
}

/* A cursor over the pieces of the units: unit u from offset off. */
typedef struct {
    const int32_t *const *unit;
    const int32_t *len;
    int64_t n, u;
    int32_t off, room;
} cursor;

static void skip_empty(cursor *c) {
    while (c->u < c->n && c->off >= c->len[c->u]) {
        c->u++;
        c->off = 0;
    }
}

/* Length of the current piece (0 at the end). */
static int32_t piece_len(const cursor *c) {
    if (c->u >= c->n) return 0;
    int32_t left = c->len[c->u] - c->off;
    return left < c->room ? left : c->room;
}

static void advance(cursor *c) {
    c->off += piece_len(c);
    skip_empty(c);
}

/* Fill one row (when ids != NULL) from the cursor; returns 0 when no units are left. */
static int pack_row(cursor *c, int T, const fm_mlm_spec *s, int32_t *ids, int32_t *types, int32_t *length) {
    if (piece_len(c) == 0) return 0;
    const int room = T - 3, half = room / 2;
    int pos = 0;
#define PUT(tok, ty)                   \
    do {                               \
        if (ids) {                     \
            ids[pos] = (tok);          \
            types[pos] = (ty);         \
        }                              \
        pos++;                         \
    } while (0)
    PUT(s->cls_id, 0);
    /* segment A: at least one piece, then more while A stays within half the room */
    int used = 0;
    for (;;) {
        int32_t k = piece_len(c);
        if (k == 0 || (used > 0 && used + k > half)) break;
        for (int32_t i = 0; i < k; i++) PUT(c->unit[c->u][c->off + i], 0);
        used += k;
        advance(c);
    }
    PUT(s->sep_id, 0);
    /* segment B: whole pieces while they fit */
    int usedb = 0;
    for (;;) {
        int32_t k = piece_len(c);
        if (k == 0 || used + usedb + k > room) break;
        for (int32_t i = 0; i < k; i++) PUT(c->unit[c->u][c->off + i], 1);
        usedb += k;
        advance(c);
    }
    if (usedb > 0) PUT(s->sep_id, 1);
#undef PUT
    if (ids)
        for (int t = pos; t < T; t++) {
            ids[t] = s->pad_id;
            types[t] = 0;
        }
    if (length) *length = pos;
    return 1;
}

int fm_mlm_pack(fm_dataset *d, const int32_t *const *unit, const int32_t *len, int64_t n, int T,
                const fm_mlm_spec *s) {
    assert(T >= 5);
    cursor c = {unit, len, n, 0, 0, T - 3};
    skip_empty(&c);
    int64_t rows = 0;
    while (pack_row(&c, T, s, NULL, NULL, NULL)) rows++;
    assert(rows < INT32_MAX);
    fm_dataset_alloc(d, (int)rows, T, s->pad_id);
    cursor c2 = {unit, len, n, 0, 0, T - 3};
    skip_empty(&c2);
    for (int64_t r = 0; r < rows; r++) {
        pack_row(&c2, T, s, d->ids + r * T, d->types + r * T, &d->lengths[r]);
        d->labels[r] = -1;
        d->targets[r] = NAN;
    }
    return (int)rows;
}
