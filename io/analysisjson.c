/* analysisjson.c: analyses as JSON (see analysisjson.h). */
#include "analysisjson.h"

#include <math.h>

/* A real, or null when x is not finite. */
static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *layer_json(int layer) { return layer >= -1 ? json_integer(layer) : json_null(); }

static json_t *count_row(const fm_mask_count_row *r) {
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(r->label));
    json_object_set_new(j, "layer", layer_json(r->layer));
    json_object_set_new(j, "tensors", json_integer(r->ntensors));
    json_object_set_new(j, "entries", json_integer((json_int_t)r->numel));
    json_object_set_new(j, "ones", json_integer((json_int_t)r->ones));
    json_object_set_new(j, "zeros", json_integer((json_int_t)r->zeros));
    json_object_set_new(j, "sparsity", num(r->sparsity));
    return j;
}

json_t *fm_mask_stats_json(const fm_mask_stats *s) {
    json_t *j = json_object(), *t = json_array(), *l = json_array(), *k = json_array();
    for (int i = 0; i < s->n; i++) json_array_append_new(t, count_row(&s->tensor[i]));
    for (int i = 0; i < s->nlayer; i++) json_array_append_new(l, count_row(&s->layer[i]));
    for (int i = 0; i < s->nkind; i++) json_array_append_new(k, count_row(&s->kind[i]));
    json_object_set_new(j, "tensors", t);
    json_object_set_new(j, "layers", l);
    json_object_set_new(j, "kinds", k);
    json_object_set_new(j, "all", count_row(&s->all));
    return j;
}

static json_t *overlap_row(const fm_overlap_row *r) {
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(r->label));
    json_object_set_new(j, "layer", layer_json(r->layer));
    json_object_set_new(j, "tensors", json_integer(r->ntensors));
    json_object_set_new(j, "entries", json_integer((json_int_t)r->numel));
    json_object_set_new(j, "zeros_a", json_integer((json_int_t)r->zeros_a));
    json_object_set_new(j, "zeros_b", json_integer((json_int_t)r->zeros_b));
    json_object_set_new(j, "common_zeros", json_integer((json_int_t)r->common));
    json_object_set_new(j, "sparsity_a", num(r->sparsity_a));
    json_object_set_new(j, "sparsity_b", num(r->sparsity_b));
    json_object_set_new(j, "shared_a", num(r->frac_a));
    json_object_set_new(j, "expected_a", num(r->expect_a));
    json_object_set_new(j, "pooled_a", num(r->pooled_a));
    json_object_set_new(j, "shared_b", num(r->frac_b));
    json_object_set_new(j, "expected_b", num(r->expect_b));
    json_object_set_new(j, "pooled_b", num(r->pooled_b));
    return j;
}

json_t *fm_overlap_json(const fm_overlap *o) {
    json_t *j = json_object(), *t = json_array(), *l = json_array(), *k = json_array();
    for (int i = 0; i < o->n; i++) json_array_append_new(t, overlap_row(&o->tensor[i]));
    for (int i = 0; i < o->nlayer; i++) json_array_append_new(l, overlap_row(&o->layer[i]));
    for (int i = 0; i < o->nkind; i++) json_array_append_new(k, overlap_row(&o->kind[i]));
    json_object_set_new(j, "tensors", t);
    json_object_set_new(j, "layers", l);
    json_object_set_new(j, "kinds", k);
    json_object_set_new(j, "all", overlap_row(&o->all));
    return j;
}

static json_t *dist(const fm_dist *d) {
    json_t *j = json_object();
    json_object_set_new(j, "l1", num(d->l1));
    json_object_set_new(j, "l1_mean", num(d->l1_mean));
    json_object_set_new(j, "cosine", num(d->cosine));
    json_object_set_new(j, "angular", num(d->angular));
    return j;
}

static json_t *distance_row(const fm_distance_row *r, int with_shape) {
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(r->label));
    json_object_set_new(j, "layer", layer_json(r->layer));
    if (with_shape) {
        json_t *s = json_array();
        for (int i = 0; i < r->ndim; i++) json_array_append_new(s, json_integer(r->shape[i]));
        json_object_set_new(j, "shape", s);
        json_object_set_new(j, "fan_in", json_integer(r->fan_in));
    }
    json_object_set_new(j, "entries", json_integer((json_int_t)r->numel));
    json_object_set_new(j, "ab", dist(&r->ab));
    json_object_set_new(j, "uniform_pair", dist(&r->uniform_pair));
    json_object_set_new(j, "normal_pair", dist(&r->normal_pair));
    json_object_set_new(j, "uniform_vs_a", dist(&r->uniform_vs_a));
    json_object_set_new(j, "normal_vs_a", dist(&r->normal_vs_a));
    return j;
}

json_t *fm_distance_json(const fm_distance_report *r) {
    json_t *j = json_object(), *t = json_array();
    for (int i = 0; i < r->n; i++) json_array_append_new(t, distance_row(&r->tensor[i], 1));
    json_object_set_new(j, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(j, "tensors", t);
    json_object_set_new(j, "all", distance_row(&r->all, 0));
    return j;
}
