/* analysisjson.h: the analyses of src/analysis.h as JSON (jansson), for
 * `finemask mask stats|overlap --json`, `finemask distance --json` and the
 * sweep report. Numbers that are undefined (NaN: a fraction over nothing)
 * are null. Every object's keys are listed in the command docs. */
#ifndef FM_ANALYSISJSON_H
#define FM_ANALYSISJSON_H

#include <jansson.h>

#include "analysis.h"

/* {"tensors": [row...], "layers": [row...], "kinds": [row...], "all": row},
 * row = {"name", "layer", "tensors", "entries", "ones", "zeros", "sparsity"}
 * ("layer" is -1 for the embeddings, N for encoder layer N, null otherwise). */
json_t *fm_mask_stats_json(const fm_mask_stats *s);

/* {"tensors": [...], "layers": [...], "kinds": [...], "all": row}, row =
 * {"name", "layer", "tensors", "entries", "zeros_a", "zeros_b", "common_zeros",
 *  "sparsity_a", "sparsity_b", "shared_a", "expected_a", "pooled_a",
 *  "shared_b", "expected_b", "pooled_b"} (shared_a = frac_a, ...). */
json_t *fm_overlap_json(const fm_overlap *o);

/* {"seed", "tensors": [row...], "all": row}, row = {"name", "layer",
 * "shape", "entries", "fan_in", "ab", "uniform_pair", "normal_pair",
 * "uniform_vs_a", "normal_vs_a"}, each distance {"l1", "l1_mean", "cosine",
 * "angular"}. */
json_t *fm_distance_json(const fm_distance_report *r);

#endif
