/* cmd_inspect.c: `finemask inspect`: what a model directory or a
 * safetensors file holds, and whether it loads. */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "fileio.h"
#include "fm.h"
#include "hfconfig.h"
#include "modeldir.h"
#include "params.h"
#include "safetensors.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask inspect MODEL_DIR|FILE.safetensors\n"
            "\n"
            "List the tensors of a safetensors file (name, dtype, shape, parameter\n"
            "count) with totals and the file's metadata. For a model directory, also\n"
            "summarise config.json, check every tensor against it as a load would,\n"
            "and print the model's fingerprint. Exit status 1 when anything is wrong.\n"
            "\n"
            "options:\n"
            "  -h, --help   this text\n");
}

static void print_table(const fm_st_file *f) {
    int w = 4;
    for (int i = 0; i < f->n; i++) {
        int l = (int)strlen(f->t[i].name);
        if (l > w) w = l;
    }
    if (w > 100) w = 100;
    printf("\n%-*s  %-7s  %-20s  %12s\n", w, "name", "dtype", "shape", "parameters");
    uint64_t total = 0, bytes_by[FM_ST_NDTYPES] = {0}, count_by[FM_ST_NDTYPES] = {0};
    char shape[256];
    for (int i = 0; i < f->n; i++) {
        const fm_st_tensor *t = &f->t[i];
        printf("%-*s  %-7s  %-20s  %12" PRIu64 "\n", w, t->name, fm_st_dtype_name(t->dtype),
               fm_st_shape_str(shape, sizeof shape, t->ndim, t->shape), t->numel);
        total += t->numel;
        bytes_by[t->dtype] += t->end - t->begin;
        count_by[t->dtype] += t->numel;
    }
    printf("\ntotal: %d tensors, %" PRIu64 " parameters, %" PRIu64 " bytes of data (", f->n, total, f->data_len);
    int first = 1;
    for (int d = 0; d < FM_ST_NDTYPES; d++) {
        if (!count_by[d] && !bytes_by[d]) continue;
        printf("%s%s: %" PRIu64, first ? "" : ", ", fm_st_dtype_name((fm_st_dtype)d), count_by[d]);
        first = 0;
    }
    printf("%s)\n", first ? "empty" : "");
}

static void print_config(const fm_config *c, const fm_hfextra *x) {
    printf("config: BERT L=%d H=%d A=%d (head size %d) I=%d, vocab %d, positions %d, token types %d\n",
           c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->hidden_size / c->num_attention_heads,
           c->intermediate_size, c->vocab_size, c->max_position_embeddings, c->type_vocab_size);
    printf("        hidden_act %s, dropout %g/%g, layer_norm_eps %g, initializer_range %g, pad_token_id %d\n",
           fm_act_name(c->hidden_act), c->hidden_dropout_prob, c->attention_probs_dropout_prob, c->layer_norm_eps,
           c->initializer_range, c->pad_token_id);
    if (c->num_labels > 0) {
        printf("        task head: %d label%s%s", c->num_labels, c->num_labels == 1 ? " (regression)" : "s",
               x->id2label ? " [" : "");
        for (int i = 0; x->id2label && i < x->nlabels; i++) printf("%s%s", i ? ", " : "", x->id2label[i]);
        printf("%s\n", x->id2label ? "]" : "");
    } else {
        printf("        task head: none\n");
    }
    if (x->finetuning_task) printf("        finetuning_task: %s\n", x->finetuning_task);
    printf("        MLM head: %s\n", c->with_mlm ? "yes" : "no");
}

/* Check the directory's tensors against its config; prints the verdict. */
static int check_dir(const char *cpath, const fm_st_file *f) {
    fm_config c;
    fm_hfextra x;
    if (fm_hfconfig_read(cpath, &c, &x) != FM_OK) return FM_ERR;
    int skip_head;
    if (fm_modeldir_resolve(cpath, &c, &x, f, NULL, &skip_head) != FM_OK) {
        fm_hfextra_free(&x);
        return FM_ERR;
    }
    printf("\n");
    print_config(&c, &x);
    fm_hfextra_free(&x);
    fm_layout lay;
    fm_layout_build(&lay, &c);
    float *params = fm_xalloc_floats(lay.numel);
    fm_load_info info;
    memset(&info, 0, sizeof info);
    int rc = fm_load_tensors(f, &c, &lay, params, &info);
    if (rc == FM_OK) {
        printf("\ncheck: OK: %d tensors loaded (%d converted to F32), %d skipped, task head %s\n", info.n_loaded,
               info.n_converted, info.n_skipped,
               c.num_labels == 0 ? "not configured" : info.head_present ? "present" : "absent (to be initialised)");
        printf("fingerprint: %016" PRIx64 "\n", fm_params_fingerprint(&lay, params));
    }
    fm_free_aligned(params);
    fm_layout_free(&lay);
    return rc;
}

int fm_cmd_inspect(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    optind = 0;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (ch == 'h') {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "finemask: error: inspect: unknown option '%s' (see finemask inspect --help)\n",
                argv[optind - 1]);
        return 1;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "finemask: error: inspect: expected one MODEL_DIR or FILE.safetensors (see finemask inspect "
                        "--help)\n");
        return 1;
    }
    const char *path = argv[optind];
    struct stat st;
    if (stat(path, &st) != 0) {
        fm_fail("%s: no such file or directory", path);
        return fm_cli_fail();
    }
    int is_dir = S_ISDIR(st.st_mode);
    char *wpath = is_dir ? fm_path_join(path, FM_MODEL_WEIGHTS) : fm_xstrdup(path);
    fm_st_file f;
    if (fm_st_open(&f, wpath) != FM_OK) {
        free(wpath);
        return fm_cli_fail();
    }
    printf("%s: %" PRIu64 " bytes, header %" PRIu64 " bytes, %d tensors\n", wpath, 8 + f.header_len + f.data_len,
           f.header_len, f.n);
    if (f.nmeta) {
        printf("metadata:\n");
        for (int i = 0; i < f.nmeta; i++) printf("  %s: %s\n", f.meta[i].key, f.meta[i].value);
    }
    print_table(&f);
    int rc = 0;
    if (is_dir) {
        char *cpath = fm_path_join(path, FM_MODEL_CONFIG), *vpath = fm_path_join(path, FM_MODEL_VOCAB);
        if (check_dir(cpath, &f) != FM_OK) {
            printf("\ncheck: FAILED\n");
            rc = fm_cli_fail();
        }
        if (!fm_file_exists(vpath)) printf("note: %s is missing\n", vpath);
        free(cpath);
        free(vpath);
    }
    fm_st_close(&f);
    free(wpath);
    return rc;
}
