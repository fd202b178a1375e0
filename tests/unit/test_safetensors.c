/* test_safetensors.c: the safetensors reader and writer: round trips, the
 * half-precision conversions, and a rejection test for every malformed case
 * the reader knows (each message must name the file and the tensor). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "fm.h"
#include "safetensors.h"

typedef struct {
    char *dir;
    char path[4096]; /* dir/t.safetensors */
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    snprintf(fx->path, sizeof fx->path, "%s/t.safetensors", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

/* ---- round trips ---- */

static void test_roundtrip(void **state) {
    fixture *fx = *state;
    float f32[6] = {1.5f, -0.0f, INFINITY, 1e-45f, -3.25f, 0};
    uint32_t nan_bits = 0x7fc01234u;
    memcpy(&f32[5], &nan_bits, 4);
    uint16_t f16[4] = {0x3c00, 0x8001, 0x7bff, 0x7e01};
    uint16_t bf16[4] = {0x3f80, 0xc2f7, 0x0001, 0xff80};
    int64_t i64[3] = {-1, 0, INT64_MAX};
    int32_t i32[2] = {7, -9};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    uint8_t boolv[2] = {1, 0};
    double f64[1] = {0.1};
    float scalar = 42.0f;
    fm_st_entry e[] = {
        {"b.f32", FM_ST_F32, 2, {2, 3}, f32},  {"a.f16", FM_ST_F16, 1, {4}, f16},
        {"c.bf16", FM_ST_BF16, 2, {2, 2}, bf16}, {"ids", FM_ST_I64, 1, {3}, i64},
        {"i32", FM_ST_I32, 1, {2}, i32},       {"mask", FM_ST_U8, 1, {5}, u8},
        {"flags", FM_ST_BOOL, 1, {2}, boolv},  {"empty", FM_ST_F32, 2, {0, 4}, NULL},
        {"scalar", FM_ST_F32, 0, {0}, &scalar}, {"f64", FM_ST_F64, 1, {1}, f64},
    };
    const int n = (int)(sizeof e / sizeof e[0]);
    fm_st_meta meta[] = {{"format", "pt"}, {"note", "h\xc3\xa9llo \"quoted\""}, {"empty", ""}};
    assert_int_equal(fm_st_write(fx->path, e, n, meta, 3), FM_OK);

    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_OK);
    assert_int_equal(f.n, n);
    assert_int_equal((8 + f.header_len) % 8, 0);
    for (int i = 0; i < n; i++) {
        /* tensors keep the given order in the data section */
        const fm_st_tensor *t = &f.t[i];
        assert_string_equal(t->name, e[i].name);
        assert_ptr_equal(fm_st_find(&f, e[i].name), t);
        assert_int_equal(t->dtype, e[i].dtype);
        assert_int_equal(t->ndim, e[i].ndim);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], e[i].shape[d]);
            numel *= (uint64_t)e[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->end - t->begin, numel * fm_st_dtype_size(t->dtype));
        if (numel) assert_memory_equal(t->data, e[i].data, numel * fm_st_dtype_size(t->dtype));
    }
    assert_int_equal(f.nmeta, 3);
    assert_string_equal(fm_st_meta_get(&f, "format"), "pt");
    assert_string_equal(fm_st_meta_get(&f, "note"), meta[1].value);
    assert_string_equal(fm_st_meta_get(&f, "empty"), "");
    assert_null(fm_st_meta_get(&f, "absent"));
    assert_null(fm_st_find(&f, "absent"));

    /* the header is padded with spaces, and the in-memory form is the same bytes */
    char *bytes;
    size_t len;
    assert_int_equal(fm_read_file(fx->path, &bytes, &len), FM_OK);
    assert_int_equal(bytes[8], '{');
    size_t close = 8 + f.header_len;
    while (bytes[close - 1] == ' ') close--;
    assert_int_equal(bytes[close - 1], '}');
    assert_true(8 + f.header_len - close < 8);
    unsigned char *mem;
    size_t mlen;
    assert_int_equal(fm_st_serialize(e, n, meta, 3, &mem, &mlen), FM_OK);
    assert_int_equal(mlen, len);
    assert_memory_equal(mem, bytes, len);

    /* the same bytes parse from memory too */
    fm_st_file g;
    assert_int_equal(fm_st_parse(&g, mem, mlen, "mem"), FM_OK);
    assert_int_equal(g.n, n);
    assert_string_equal(g.path, "mem");
    fm_st_close(&g);
    free(mem);
    free(bytes);
    fm_st_close(&f);
}

static void test_empty_file_roundtrip(void **state) {
    fixture *fx = *state;
    assert_int_equal(fm_st_write(fx->path, NULL, 0, NULL, 0), FM_OK);
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_OK);
    assert_int_equal(f.n, 0);
    assert_int_equal(f.nmeta, 0);
    assert_int_equal(f.data_len, 0);
    fm_st_close(&f);
}

static void test_writer_rejects(void **state) {
    fixture *fx = *state;
    float x[2] = {1, 2};
    fm_st_entry dup[] = {{"w", FM_ST_F32, 1, {1}, x}, {"w", FM_ST_F32, 1, {1}, x + 1}};
    assert_int_equal(fm_st_write(fx->path, dup, 2, NULL, 0), FM_ERR);
    tu_assert_contains(fm_last_error(), "'w'");
    tu_assert_contains(fm_last_error(), fx->path);
    fm_st_entry reserved[] = {{"__metadata__", FM_ST_F32, 1, {1}, x}};
    assert_int_equal(fm_st_write(fx->path, reserved, 1, NULL, 0), FM_ERR);
    tu_assert_contains(fm_last_error(), "reserved");
    fm_st_entry neg[] = {{"n", FM_ST_F32, 1, {-1}, x}};
    assert_int_equal(fm_st_write(fx->path, neg, 1, NULL, 0), FM_ERR);
    tu_assert_contains(fm_last_error(), "'n'");
    fm_st_meta m2[] = {{"k", "a"}, {"k", "b"}};
    assert_int_equal(fm_st_write(fx->path, NULL, 0, m2, 2), FM_ERR);
    tu_assert_contains(fm_last_error(), "'k'");
    /* nothing was left behind */
    assert_false(fm_file_exists(fx->path));
}

/* ---- conversions ---- */

static void test_f16_known_values(void **state) {
    (void)state;
    static const struct {
        uint16_t h;
        float f;
    } known[] = {
        {0x0000, 0.0f},           {0x3c00, 1.0f},          {0xc000, -2.0f},        {0x3555, 0.333251953125f},
        {0x7bff, 65504.0f},       {0x0400, 0x1p-14f},      {0x0001, 0x1p-24f},     {0x03ff, 0x1.ff8p-15f},
        {0x8001, -0x1p-24f},      {0x3bff, 0.99951171875f}, {0x4248, 3.140625f},   {0x7c00, INFINITY},
        {0xfc00, -INFINITY},      {0x5640, 100.0f},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        assert_true(fm_f16_to_f32(known[i].h) == known[i].f);
        assert_int_equal(fm_f32_to_f16(known[i].f), known[i].h);
    }
    float nz = fm_f16_to_f32(0x8000);
    assert_true(nz == 0.0f && signbit(nz));
    assert_true(isnan(fm_f16_to_f32(0x7e00)));
    assert_true(isnan(fm_f16_to_f32(0xfc01)));
    /* every finite half survives half -> float -> half exactly */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
            assert_true(isnan(fm_f16_to_f32((uint16_t)h)));
            assert_true(isnan(fm_f16_to_f32(fm_f32_to_f16(fm_f16_to_f32((uint16_t)h)))));
            continue;
        }
        assert_int_equal(fm_f32_to_f16(fm_f16_to_f32((uint16_t)h)), h);
    }
    /* rounding to nearest, ties to even */
    assert_int_equal(fm_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);       /* tie, down to even */
    assert_int_equal(fm_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);   /* tie, up to even */
    assert_int_equal(fm_f32_to_f16(1.0f + 0x1.001p-11f), 0x3c01);   /* just above the tie */
    assert_int_equal(fm_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(fm_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(fm_f32_to_f16(1e10f), 0x7c00);
    assert_int_equal(fm_f32_to_f16(0x1p-25f), 0x0000);               /* tie to zero */
    assert_int_equal(fm_f32_to_f16(0x1.000002p-25f), 0x0001);
    assert_int_equal(fm_f32_to_f16(1.5f * 0x1p-24f), 0x0002);        /* tie, up to even */
    assert_int_equal(fm_f32_to_f16(2.5f * 0x1p-24f), 0x0002);        /* tie, down to even */
    assert_int_equal(fm_f32_to_f16(0x1.ffcp-15f), 0x0400);           /* rounds up into the normals */
    assert_int_equal(fm_f32_to_f16(-1e-30f), 0x8000);
    assert_true(isnan(fm_f16_to_f32(fm_f32_to_f16(NAN))));
}

static void test_bf16_known_values(void **state) {
    (void)state;
    static const struct {
        uint16_t b;
        float f;
    } known[] = {
        {0x0000, 0.0f}, {0x3f80, 1.0f},         {0xc2f7, -123.5f},         {0x4049, 3.140625f},
        {0x0001, 0x1p-133f}, {0x7f7f, 0x1.fep127f}, {0x7f80, INFINITY}, {0xff80, -INFINITY},
        {0x3c00, 0x1p-7f},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        assert_true(fm_bf16_to_f32(known[i].b) == known[i].f);
        assert_int_equal(fm_f32_to_bf16(known[i].f), known[i].b);
    }
    assert_true(isnan(fm_bf16_to_f32(0x7fc0)));
    assert_int_equal(fm_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie, down to even */
    assert_int_equal(fm_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie, up to even */
    assert_int_equal(fm_f32_to_bf16(0x1.ffp127f), 0x7f80);        /* overflows to infinity */
    assert_true(isnan(fm_bf16_to_f32(fm_f32_to_bf16(NAN))));
    for (uint32_t b = 0; b < 0x10000u; b++) {
        float f = fm_bf16_to_f32((uint16_t)b);
        if (isnan(f)) continue;
        assert_int_equal(fm_f32_to_bf16(f), b);
    }
}

static void test_to_float(void **state) {
    fixture *fx = *state;
    uint16_t h[3] = {0x3c00, 0xc000, 0x3555};
    uint16_t b[2] = {0xc2f7, 0x4049};
    double d[3] = {0.5, 1e300, -1e-50};
    float s[2] = {3.5f, -1.0f};
    int64_t ids[1] = {5};
    fm_st_entry e[] = {{"h", FM_ST_F16, 1, {3}, h}, {"b", FM_ST_BF16, 1, {2}, b}, {"d", FM_ST_F64, 1, {3}, d},
                       {"s", FM_ST_F32, 1, {2}, s}, {"ids", FM_ST_I64, 1, {1}, ids}};
    assert_int_equal(fm_st_write(fx->path, e, 5, NULL, 0), FM_OK);
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_OK);
    float out[3];
    assert_int_equal(fm_st_to_float(&f, fm_st_find(&f, "h"), out), FM_OK);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.333251953125f);
    assert_int_equal(fm_st_to_float(&f, fm_st_find(&f, "b"), out), FM_OK);
    assert_true(out[0] == -123.5f && out[1] == 3.140625f);
    assert_int_equal(fm_st_to_float(&f, fm_st_find(&f, "d"), out), FM_OK);
    assert_true(out[0] == 0.5f && isinf(out[1]) && out[2] == -0.0f);
    assert_int_equal(fm_st_to_float(&f, fm_st_find(&f, "s"), out), FM_OK);
    assert_true(out[0] == 3.5f && out[1] == -1.0f);
    assert_int_equal(fm_st_to_float(&f, fm_st_find(&f, "ids"), out), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    tu_assert_contains(fm_last_error(), "'ids'");
    tu_assert_contains(fm_last_error(), "I64");
    fm_st_close(&f);
}

/* ---- must fail: every malformed file is rejected with a message that names it ---- */

/* Write an 8-byte length (hlen, or strlen(header) when hlen < 0), the header
 * and dlen bytes of data, then expect fm_st_open to fail with a message that
 * contains the path and each of the needles. */
static void expect_reject_len(fixture *fx, long long hlen, const char *header, size_t dlen, const char *needle1,
                              const char *needle2) {
    size_t hl = header ? strlen(header) : 0;
    size_t len = 8 + hl + dlen;
    unsigned char *b = calloc(1, len);
    uint64_t n = hlen < 0 ? (uint64_t)hl : (uint64_t)hlen;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    if (hl) memcpy(b + 8, header, hl);
    for (size_t i = 0; i < dlen; i++) b[8 + hl + i] = (unsigned char)i;
    assert_int_equal(tu_write_file(fx->path, b, len), 0);
    fm_st_file f;
    fm_clear_error();
    assert_int_equal(fm_st_open(&f, fx->path), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    if (needle1) tu_assert_contains(fm_last_error(), needle1);
    if (needle2) tu_assert_contains(fm_last_error(), needle2);
    assert_int_equal(f.n, 0); /* left empty */
    fm_st_close(&f);
    /* the in-memory parser gives the same verdict, naming what it was given */
    assert_int_equal(fm_st_parse(&f, b, len, "buffer.safetensors"), FM_ERR);
    tu_assert_contains(fm_last_error(), "buffer.safetensors");
    free(b);
}

static void expect_reject(fixture *fx, const char *header, size_t dlen, const char *needle1, const char *needle2) {
    expect_reject_len(fx, -1, header, dlen, needle1, needle2);
}

static void reject_short_file(void **state) {
    fixture *fx = *state;
    assert_int_equal(tu_write_file(fx->path, "\x02\0\0\0\0", 5), 0);
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    tu_assert_contains(fm_last_error(), "too short");
    assert_int_equal(tu_write_file(fx->path, "", 0), 0);
    assert_int_equal(fm_st_open(&f, fx->path), FM_ERR);
    tu_assert_contains(fm_last_error(), "0 bytes");
}

static void reject_header_past_end(void **state) {
    expect_reject_len(*state, 100, "{}", 0, "runs past the end of the file", NULL);
}

static void reject_header_over_limit(void **state) {
    fixture *fx = *state;
    /* A sparse file big enough to hold the claimed header: the reader must
     * refuse on the length alone, without touching (or allocating) 100 MB. */
    uint64_t n = FM_ST_MAX_HEADER + 1;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(n >> (8 * i));
    int fd = open(fx->path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, len8, 8), 8);
    assert_int_equal(ftruncate(fd, (off_t)(8 + n + 64)), 0);
    close(fd);
    size_t rss0 = fm_peak_rss();
    fm_st_file f;
    assert_int_equal(fm_st_open(&f, fx->path), FM_ERR);
    tu_assert_contains(fm_last_error(), fx->path);
    tu_assert_contains(fm_last_error(), "exceeds the limit");
    assert_true(fm_peak_rss() < rss0 + (32u << 20));
    /* and a huge length in a small file is refused for the same reason */
    expect_reject_len(fx, (long long)INT64_MAX, "{}", 0, "exceeds the limit", NULL);
}

static void reject_invalid_json(void **state) {
    expect_reject(*state, "{\"a\": {\"dtype\": \"F32\", ", 0, "not valid JSON", NULL);
    expect_reject(*state, "{\"a\": 1} trailing", 0, "not valid JSON", NULL);
    expect_reject(*state, "{\"\xff\": 1}", 0, "not valid JSON", NULL); /* not UTF-8 */
}

static void reject_header_not_object(void **state) {
    expect_reject(*state, "[1, 2]", 0, "expected an object", NULL);
}

static void reject_entry_not_object(void **state) {
    expect_reject(*state, "{\"w\": 5}", 0, "'w'", "expected an object");
    expect_reject(*state, "{\"w\": [\"F32\", [1], [0, 4]]}", 4, "'w'", "expected an object");
}

static void reject_unknown_dtype(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F17\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "unknown dtype 'F17'");
    expect_reject(*state, "{\"w\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "unknown dtype");
}

static void reject_dtype_not_string(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "dtype is a JSON integer");
    expect_reject(*state, "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w'", "no \"dtype\"");
}

static void reject_shape_not_list(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "shape is a JSON integer");
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "'w'", "no \"shape\"");
}

static void reject_shape_negative(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "shape[1] is -1");
}

static void reject_shape_not_integer(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "shape[0] is a JSON real number");
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "shape[0] is a JSON string");
}

static void reject_shape_too_large(void **state) {
    expect_reject(*state,
                  "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], \"data_offsets\": [0, 4]}}",
                  4, "'w'", "too large");
    expect_reject(*state,
                  "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
                  "'w'", "9 dimensions");
}

static void reject_offsets_not_pair(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4]}}", 4, "'w'",
                  "[begin, end]");
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 4, "'w'",
                  "[begin, end]");
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": \"0-4\"}}", 4, "'w'",
                  "[begin, end]");
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "'w'", "no \"data_offsets\"");
}

static void reject_offsets_not_integers(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.0]}}", 4, "'w'",
                  "data_offsets[1]");
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4, "'w'",
                  "data_offsets[0]");
}

static void reject_offsets_begin_after_end(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4, "'w'",
                  "begin > end");
}

static void reject_size_mismatch(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4, "'w'",
                  "needs 8");
    expect_reject(*state, "{\"w\": {\"dtype\": \"F16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16, "'w'",
                  "hold 16 bytes, but F16 [2, 2] needs 8");
}

static void reject_offsets_past_end(void **state) {
    expect_reject(*state, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, "'w'",
                  "past the end of the data section");
}

static void reject_overlap(void **state) {
    expect_reject(*state,
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                  " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                  12, "'b'", "overlap tensor 'a'");
    /* the same range twice */
    expect_reject(*state,
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                  " \"b\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                  4, "'b'", "overlap tensor 'a'");
}

static void reject_hole(void **state) {
    expect_reject(*state,
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                  " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
                  12, "'b'", "hole of 4 unused bytes after tensor 'a'");
    expect_reject(*state, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "'a'",
                  "hole of 4 unused bytes after the start");
}

static void reject_trailing_bytes(void **state) {
    expect_reject(*state, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 6, "'a'",
                  "2 unused bytes at the end");
    expect_reject(*state, "{}", 3, "3 bytes of data but no tensors", NULL);
}

static void reject_duplicate_name(void **state) {
    expect_reject(*state,
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                  " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                  8, "duplicate", "a");
}

static void reject_bad_metadata(void **state) {
    expect_reject(*state, "{\"__metadata__\": {\"format\": 1}}", 0, "__metadata__ entry 'format'",
                  "expected a string");
    expect_reject(*state, "{\"__metadata__\": [\"pt\"]}", 0, "__metadata__ is a JSON array", NULL);
}

static void accept_zero_size_and_padding(void **state) {
    fixture *fx = *state;
    /* A zero-size tensor at the end, a header padded with spaces: valid. */
    const char *h = "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                    " \"z\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [4, 4]}}   ";
    size_t hl = strlen(h), len = 8 + hl + 4;
    unsigned char *b = calloc(1, len);
    b[0] = (unsigned char)hl;
    memcpy(b + 8, h, hl);
    fm_st_file f;
    assert_int_equal(fm_st_parse(&f, b, len, "x"), FM_OK);
    assert_int_equal(f.n, 2);
    assert_int_equal(fm_st_find(&f, "z")->numel, 0);
    fm_st_close(&f);
    free(b);
    (void)fx;
}

int main(void) {
    const struct CMUnitTest roundtrip[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_rejects, setup, teardown),
        cmocka_unit_test(test_f16_known_values),
        cmocka_unit_test(test_bf16_known_values),
        cmocka_unit_test_setup_teardown(test_to_float, setup, teardown),
        cmocka_unit_test_setup_teardown(accept_zero_size_and_padding, setup, teardown),
    };
    /* Tests that must fail: each corrupt file is rejected, naming the file and tensor. */
    const struct CMUnitTest must_fail[] = {
        cmocka_unit_test(reject_short_file),
        cmocka_unit_test(reject_header_past_end),
        cmocka_unit_test(reject_header_over_limit),
        cmocka_unit_test(reject_invalid_json),
        cmocka_unit_test(reject_header_not_object),
        cmocka_unit_test(reject_entry_not_object),
        cmocka_unit_test(reject_unknown_dtype),
        cmocka_unit_test(reject_dtype_not_string),
        cmocka_unit_test(reject_shape_not_list),
        cmocka_unit_test(reject_shape_negative),
        cmocka_unit_test(reject_shape_not_integer),
        cmocka_unit_test(reject_shape_too_large),
        cmocka_unit_test(reject_offsets_not_pair),
        cmocka_unit_test(reject_offsets_not_integers),
        cmocka_unit_test(reject_offsets_begin_after_end),
        cmocka_unit_test(reject_size_mismatch),
        cmocka_unit_test(reject_offsets_past_end),
        cmocka_unit_test(reject_overlap),
        cmocka_unit_test(reject_hole),
        cmocka_unit_test(reject_trailing_bytes),
        cmocka_unit_test(reject_duplicate_name),
        cmocka_unit_test(reject_bad_metadata),
    };
    int failed = cmocka_run_group_tests_name("safetensors_roundtrip", roundtrip, NULL, NULL);
    failed += cmocka_run_group_tests_name("safetensors_must_fail", must_fail, setup, teardown);
    return failed;
}
