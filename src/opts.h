/* opts.h: every option of fine-tuning (`finemask train`, a job of `finemask
 * run`) and of pre-training (`finemask pretrain`) described once, as an
 * X-macro table: its field, kind, default, command-line name, value range,
 * options.json key, job-file key, flags and help text. The option structs
 * and their defaults are generated here; cli/ generates getopt and --help
 * from the tables (cli/optparse.h), io/ options.json, the resume check, the
 * job file's [train] keys and metrics.json's hyperparameters (io/options.h).
 * Pure data: no I/O.
 *
 * A row is
 *   X(KIND, field, default, "cli-name", "ARG", lo, hi, "json-key", "job-key", "hyper-key", flags, "help")
 * KIND: STR (const char *, NULL unless given), F64 (double), INT (int), I64
 * (int64_t), U64 (uint64_t), NOFLAG (int, default 1; `--cli-name` sets 0),
 * FLAG (int, default 0; `--cli-name` sets 1), LIST (const char *const *field
 * and int nfield: the option repeats), and the enums MODE, WEIGHTS, STE, RANK.
 * lo and hi bound a number as the command line and the job file accept it.
 * The json key is the option's key in RUN_DIR/options.json (fine-tuning) or in
 * the state's "options" (pre-training), NULL for none; the job key its key in
 * a job file's [train] section, the hyper key its key in metrics.json's
 * "hyperparameters" (NULL: none). Flags: FM_OPT_RESUME (the option decides the
 * results: options.json holds it and a resumed run must repeat it),
 * FM_OPT_REQUIRED (a run needs it), FM_OPT_NODEF (--help shows no default:
 * the help text says what it is), the help groups FM_OPT_G_MASK and
 * FM_OPT_G_RESUME. "\n" in a help text starts a continuation line.
 *
 * The macros expand once into the structs and the defaults, and once into
 * an array of fm_opt rows (src/opts.c); everything else is a plain loop over
 * that array, so a consumer is ordinary C rather than another expansion.
 * Adding an option: a row here, and the code that uses its field. */
#ifndef FM_OPTS_H
#define FM_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "train.h"

/* The pre-trained weights a job starts from: as they are, or one of the
 * paper's controls (controls.h). */
typedef enum { FM_WEIGHTS_PRETRAINED = 0, FM_WEIGHTS_SHUFFLED = 1, FM_WEIGHTS_RANDOM = 2 } fm_weights;

/* The names of the enums' values, as the command line, job files and the
 * run files spell them (index = the value). */
extern const char *const fm_train_mode_names[3];
extern const char *const fm_weights_names[3];
extern const char *const fm_ste_names[2];
extern const char *const fm_init_rank_names[2];
/* fm_pipe_schedule (pipesched.h): a pipeline's order of forwards and backwards. */
extern const char *const fm_pipe_schedule_names[2];

#define FM_OPT_RESUME 1u
#define FM_OPT_NODEF 2u
#define FM_OPT_G_MASK 4u
#define FM_OPT_G_RESUME 8u
#define FM_OPT_REQUIRED 16u

/* ---- fine-tuning: fm_ft_opts ---- */
#define FM_FT_OPTIONS(X)                                                                                              \
    X(STR, model_dir, NULL, "model", "DIR", 0, 0, "model", NULL, NULL, FM_OPT_RESUME | FM_OPT_REQUIRED,               \
      "HuggingFace model directory (config.json, model.safetensors,\n"                                                \
      "tokenizer.json or vocab.txt [+ tokenizer_config.json])")                                                       \
    X(STR, task, NULL, "task", "TASK", 0, 0, "task", NULL, NULL, FM_OPT_RESUME | FM_OPT_REQUIRED,                     \
      "CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE or WNLI")                                                       \
    X(STR, data_dir, NULL, "data", "GLUE_DIR", 0, 0, "data", NULL, NULL, FM_OPT_RESUME | FM_OPT_REQUIRED,             \
      "directory with GLUE_DIR/TASK/{train,dev}.tsv")                                                                 \
    X(STR, out_dir, NULL, "out", "RUN_DIR", 0, 0, NULL, NULL, NULL, FM_OPT_REQUIRED, "run directory (created)")       \
    X(MODE, mode, FM_TRAIN_FULL, "mode", "M", 0, 0, "mode", NULL, NULL, FM_OPT_RESUME,                                \
      "full (every parameter trains), supermask (a binary mask over\n"                                                \
      "the frozen weights, see below) or freeze (L0-close, --freeze)")                                                \
    X(STR, freeze, NULL, "freeze", "SET", 0, 0, "freeze", NULL, NULL, FM_OPT_RESUME,                                  \
      "mode freeze: the tensors in SET keep their pre-trained values;\n"                                              \
      "SET is a comma-separated list of key (W_K of every layer),\n"                                                  \
      "deepest:N (the last N layers), word_embeddings, all (only the\n"                                               \
      "task head trains), or globs over tensor names\n"                                                               \
      "(encoder.layer.*.attention.self.query.weight)")                                                                \
    X(WEIGHTS, weights, FM_WEIGHTS_PRETRAINED, "weights", "W", 0, 0, "weights", NULL, NULL, FM_OPT_RESUME,            \
      "controls: shuffled (each tensor permuted, norm kept) or random\n"                                              \
      "(BERT's initialisation from --seed)")                                                                          \
    X(F64, lr, 2e-5, "lr", "X", 0, 1e6, "lr", "lr", "lr", FM_OPT_RESUME, "peak learning rate")                        \
    X(INT, batch_size, 32, "batch-size", "N", 1, 1 << 20, "batch_size", "batch_size", "batch_size", FM_OPT_RESUME,    \
      "examples per step")                                                                                            \
    X(F64, epochs, 3, "epochs", "X", 0, 1e6, "epochs", "epochs", "epochs", FM_OPT_RESUME,                             \
      "passes over the training set, may be fractional")                                                              \
    X(I64, max_steps, -1, "max-steps", "N", 0, 1LL << 40, "max_steps", "max_steps", NULL,                             \
      FM_OPT_RESUME | FM_OPT_NODEF,                                                                                   \
      "stop after N steps (overrides --epochs)")                                                                      \
    X(INT, max_seq_length, 128, "max-seq-length", "N", 3, 1 << 16, "max_seq_length", "max_seq_length",                \
      "max_seq_length", FM_OPT_RESUME, "tokens per example after truncation")                                         \
    X(F64, warmup, 0.1, "warmup", "X", 0, 1, "warmup", "warmup", "warmup_ratio", FM_OPT_RESUME,                       \
      "fraction of the steps with linear warm-up")                                                                    \
    X(F64, weight_decay, 0.01, "weight-decay", "X", 0, 1, "weight_decay", "weight_decay", "weight_decay",             \
      FM_OPT_RESUME, "AdamW weight decay, not on biases or LayerNorm")                                                \
    X(F64, adam_eps, 1e-8, "adam-eps", "X", 0, 1, "adam_eps", "adam_eps", "adam_eps", FM_OPT_RESUME,                  \
      "AdamW epsilon; original BERT: 1e-6")                                                                           \
    X(F64, adam_beta1, 0.9, "adam-beta1", "X", 0, 0.999999, "adam_beta1", "adam_beta1", "adam_beta1", FM_OPT_RESUME,  \
      "AdamW beta1")                                                                                                  \
    X(F64, adam_beta2, 0.999, "adam-beta2", "X", 0, 0.999999999, "adam_beta2", "adam_beta2", "adam_beta2",            \
      FM_OPT_RESUME, "AdamW beta2")                                                                                   \
    X(F64, max_grad_norm, 1.0, "max-grad-norm", "X", 0, 1e30, "max_grad_norm", "max_grad_norm", "max_grad_norm",      \
      FM_OPT_RESUME, "global gradient-norm clipping, 0 to disable")                                                   \
    X(F64, dropout, -1, "dropout", "P", 0, 0.99, "dropout", "dropout", NULL, FM_OPT_RESUME | FM_OPT_NODEF,            \
      "hidden and attention dropout (default: as config.json)")                                                       \
    X(U64, seed, 42, "seed", "N", 0, 1LL << 62, "seed", NULL, "seed", FM_OPT_RESUME,                                  \
      "data order, dropout and new task head")                                                                        \
    X(NOFLAG, shuffle, 1, "no-shuffle", NULL, 0, 0, "shuffle", "shuffle", "shuffle", FM_OPT_RESUME,                   \
      "take the training examples in file order")                                                                     \
    X(I64, max_train_examples, -1, "max-train-examples", "N", 0, 1LL << 40, "max_train_examples",                     \
      "max_train_examples", NULL, FM_OPT_RESUME | FM_OPT_NODEF, "use only the first N training examples")             \
    X(I64, eval_every, 0, "eval-every", "N", 0, 1LL << 40, "eval_every", NULL, NULL, FM_OPT_RESUME | FM_OPT_NODEF,    \
      "also score the dev set every N steps")                                                                         \
    X(I64, log_every, 50, "log-every", "N", 1, 1LL << 40, "log_every", "log_every", NULL, FM_OPT_RESUME,              \
      "a log.jsonl line every N steps")                                                                               \
    X(INT, eval_batch_size, 32, "eval-batch-size", "N", 1, 1 << 20, "eval_batch_size", "eval_batch_size", NULL,       \
      FM_OPT_RESUME, "examples per evaluation batch")                                                                 \
    X(STR, dump_grads, NULL, "dump-grads", "FILE", 0, 0, NULL, NULL, NULL, 0,                                         \
      "write the first batch's gradients (safetensors, parameter names)")                                             \
    X(INT, threads, 0, "threads", "N", 1, 4096, NULL, NULL, NULL, FM_OPT_NODEF,                                       \
      "threads (default: BLIS_NUM_THREADS, OMP_NUM_THREADS or all cores)")                                            \
    X(STE, ste, FM_STE_IDENTITY, "ste", "F", 0, 0, "ste", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK,                  \
      "straight-through gradient to nu: dL/dtheta*theta~*sigmoid'(nu)\n"                                              \
      "(sigmoid) or dL/dtheta*theta~ (identity)")                                                                     \
    X(F64, init_sparsity, 0, "init-sparsity", "S", 0, 1, "init_sparsity", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK,  \
      "nu = -X for the fraction S of entries with the smallest |theta~|,\n"                                           \
      "+X for the rest (X: --nu-init)")                                                                               \
    X(F64, nu_init, 5, "nu-init", "X", 0, 100, "nu_init", "nu_init", NULL, FM_OPT_RESUME | FM_OPT_G_MASK,             \
      "magnitude X of the initial scores nu (sigmoid(5) = 0.993)")                                                    \
    X(RANK, init_rank, FM_RANK_GLOBAL, "init-rank", "R", 0, 0, "init_rank", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK, \
      "global (one ranking over every masked entry) or tensor")                                                       \
    X(STR, mask_glob, NULL, "mask", "GLOB", 0, 0, "mask", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK,                  \
      "masked tensors, comma-separated globs over tensor names\n"                                                     \
      "(default: every weight matrix of the embeddings, encoder, pooler)")                                            \
    X(STR, mask_layers, NULL, "mask-layers", "LIST", 0, 0, "mask_layers", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK,  \
      "mask only these encoder layers, e.g. 0-3,8")                                                                   \
    X(F64, mask_lr, 0.3, "mask-lr", "X", 0, 1e6, "mask_lr", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK,                \
      "peak learning rate of nu, AdamW without weight decay (nu moves\n"                                              \
      "at most about X a step: X x steps must pass --nu-init to flip)")                                               \
    X(F64, head_lr, -1, "head-lr", "X", 0, 1e6, "head_lr", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK | FM_OPT_NODEF,  \
      "peak learning rate of the task head (default --lr)")                                                           \
    X(INT, samples, 10, "samples", "N", 0, 1000000, "samples", NULL, NULL, FM_OPT_RESUME | FM_OPT_G_MASK,             \
      "score N independent mask samples on dev at the end")                                                           \
    X(I64, checkpoint_every, 0, "checkpoint-every", "N", 0, 1LL << 40, NULL, NULL, NULL,                              \
      FM_OPT_G_RESUME | FM_OPT_NODEF,                                                                                 \
      "write RUN_DIR/state.safetensors every N steps (default: only\n"                                                \
      "on SIGTERM, which then stops the run, or SIGUSR1, which continues)")                                           \
    X(FLAG, resume, 0, "resume", "RUN_DIR", 0, 0, NULL, NULL, NULL, FM_OPT_G_RESUME | FM_OPT_NODEF,                   \
      "continue a killed run from its state with the options in\n"                                                    \
      "RUN_DIR/options.json (other options given must equal them); the\n"                                             \
      "finished run directory is byte-identical to an uninterrupted one")

/* ---- pre-training: fm_pt_opts (json keys: the state's "options", in this order) ---- */
#define FM_PT_OPTIONS(X)                                                                                              \
    X(LIST, corpus, NULL, "corpus", "FILE", 0, 0, "corpus", NULL, NULL, FM_OPT_RESUME | FM_OPT_REQUIRED,              \
      "a text file (repeat for more, or list files after the options)")                                               \
    X(STR, vocab, NULL, "vocab", "FILE", 0, 0, "vocab", NULL, NULL, FM_OPT_RESUME | FM_OPT_REQUIRED,                  \
      "vocab.txt with [PAD] [UNK] [CLS] [SEP] [MASK]")                                                                \
    X(STR, out, NULL, "out", "DIR", 0, 0, NULL, NULL, NULL, FM_OPT_REQUIRED, "the model directory to write")          \
    X(STR, config, "tiny", "config", "NAME|FILE", 0, 0, "config", NULL, NULL, FM_OPT_RESUME | FM_OPT_NODEF,           \
      "tiny (default), mini, small, medium, base, large, or a config.json;\n"                                         \
      "vocab_size is taken from --vocab")                                                                             \
    X(STR, init, NULL, "init", "MODEL_DIR", 0, 0, "init", NULL, NULL, FM_OPT_RESUME | FM_OPT_NODEF,                   \
      "continue pre-training a model directory (config.json and\n"                                                   \
      "model.safetensors with its MLM head, as pretrain writes them)\n"                                              \
      "instead of a random initialisation; the config is its, so\n"                                                  \
      "no --config; its vocab_size must be --vocab's")                                                                \
    X(I64, steps, 1000, "steps", "N", 1, 1LL << 40, "steps", NULL, NULL, FM_OPT_RESUME, "optimiser steps")            \
    X(INT, batch, 32, "batch", "B", 1, 1 << 20, "batch", NULL, NULL, FM_OPT_RESUME, "rows per step, over all ranks")  \
    X(INT, seq, 128, "seq", "T", 8, 1 << 16, "seq", NULL, NULL, FM_OPT_RESUME, "tokens per row")                      \
    X(F64, lr, 1e-4, "lr", "X", 0, 1e6, "lr", NULL, NULL, FM_OPT_RESUME, "peak learning rate")                        \
    X(F64, warmup, 0.1, "warmup", "X", 0, 1, "warmup", NULL, NULL, FM_OPT_RESUME,                                     \
      "fraction of the steps with linear warm-up, then linear decay")                                                 \
    X(F64, weight_decay, 0.01, "weight-decay", "X", 0, 1, "weight-decay", NULL, NULL, FM_OPT_RESUME,                  \
      "AdamW weight decay")                                                                                           \
    X(F64, adam_eps, 1e-6, "adam-eps", "X", 0, 1, "adam-eps", NULL, NULL, FM_OPT_RESUME,                              \
      "AdamW epsilon, as BERT pre-training")                                                                          \
    X(F64, max_grad_norm, 1.0, "max-grad-norm", "X", 0, 1e30, "max-grad-norm", NULL, NULL, FM_OPT_RESUME,             \
      "global gradient-norm clipping, 0 to disable")                                                                  \
    X(F64, mlm_prob, 0.15, "mlm-prob", "X", 0.001, 1, "mlm-prob", NULL, NULL, FM_OPT_RESUME, "share of tokens chosen") \
    X(F64, dropout, -1, "dropout", "P", 0, 0.99, "dropout", NULL, NULL, FM_OPT_RESUME | FM_OPT_NODEF,                 \
      "hidden and attention dropout (default: the config's); written to the model's config.json, "                     \
      "so fine-tuning uses it too")                                                                                    \
    X(U64, seed, 0, "seed", "N", 0, 1LL << 62, "seed", NULL, NULL, FM_OPT_RESUME,                                     \
      "initialisation, data order, masking and dropout")                                                              \
    X(I64, log_every, 50, "log-every", "N", 1, 1LL << 40, "log-every", NULL, NULL, FM_OPT_RESUME,                     \
      "a pretrain_log.jsonl line every N steps")                                                                      \
    X(INT, threads, 0, "threads", "N", 1, 4096, NULL, NULL, NULL, FM_OPT_NODEF, "threads per rank")                   \
    X(FLAG, force, 0, "force", NULL, 0, 0, NULL, NULL, NULL, FM_OPT_NODEF,                                            \
      "overwrite an existing model (and discard a saved state)")                                                      \
    X(I64, checkpoint_every, 0, "checkpoint-every", "N", 0, 1LL << 40, NULL, NULL, NULL,                              \
      FM_OPT_G_RESUME | FM_OPT_NODEF, "also save the state every N steps (default: only on a signal)")                \
    X(FLAG, resume, 0, "resume", NULL, 0, 0, NULL, NULL, NULL, FM_OPT_G_RESUME | FM_OPT_NODEF,                        \
      "continue from MODEL_DIR/state.safetensors when it exists (from\n"                                              \
      "step 0 when it does not; nothing to do when the model is complete);\n"                                         \
      "give the same options: a run with other --steps, --batch, --seq,\n"                                            \
      "--lr, corpus, vocab, config... is refused, naming the option.\n"                                               \
      "The finished model directory is byte-identical to an\n"                                                        \
      "uninterrupted run's; the state is removed once the model is written")

/* The C declaration of each kind's field. */
#define FM_OPT_DECL_STR(f) const char *f;
#define FM_OPT_DECL_F64(f) double f;
#define FM_OPT_DECL_INT(f) int f;
#define FM_OPT_DECL_I64(f) int64_t f;
#define FM_OPT_DECL_U64(f) uint64_t f;
#define FM_OPT_DECL_NOFLAG(f) int f;
#define FM_OPT_DECL_FLAG(f) int f;
#define FM_OPT_DECL_LIST(f) const char *const *f; int n##f;
#define FM_OPT_DECL_MODE(f) fm_train_mode f;
#define FM_OPT_DECL_WEIGHTS(f) fm_weights f;
#define FM_OPT_DECL_STE(f) fm_ste f;
#define FM_OPT_DECL_RANK(f) fm_init_rank f;
#define FM_OPT_FIELD(kind, field, ...) FM_OPT_DECL_##kind(field)

struct fm_ft_hooks;

/* One fine-tuning job's options (fields: FM_FT_OPTIONS). */
typedef struct {
    FM_FT_OPTIONS(FM_OPT_FIELD)
    struct fm_ft_hooks *hooks; /* NULL: one process, no result wanted (finetune.h) */
} fm_ft_opts;

/* One pre-training run's options (fields: FM_PT_OPTIONS). */
typedef struct {
    FM_PT_OPTIONS(FM_OPT_FIELD)
    int signals; /* SIGTERM saves OUT/state.safetensors and stops, SIGUSR1 saves and goes on (`finemask pretrain`) */
} fm_pt_opts;

/* Every field at its table default. */
void fm_ft_opts_default(fm_ft_opts *o);
void fm_pt_opts_default(fm_pt_opts *o);

/* The options that go together: --freeze with mode freeze (and mode freeze
 * needs it), --mask, --mask-layers and --init-sparsity with mode supermask.
 * FM_ERR naming them otherwise. */
int fm_ft_opts_check(const fm_ft_opts *o);

/* ---- the tables as data, for the generic readers and writers ---- */
typedef enum {
    FM_OPT_STR, FM_OPT_F64, FM_OPT_INT, FM_OPT_I64, FM_OPT_U64, FM_OPT_NOFLAG, FM_OPT_FLAG, FM_OPT_LIST,
    FM_OPT_ENUM
} fm_opt_kind;

typedef struct {
    fm_opt_kind kind;
    const char *field;          /* the C field's name */
    size_t offset, count_offset; /* of the field; LIST: of its count */
    double def;                 /* numbers, flags and enums: the default */
    const char *def_str;        /* STR: the default (NULL: none) */
    const char *name, *arg;     /* command line: --name ARG (arg NULL: takes no value) */
    double lo, hi;              /* numbers: the accepted range */
    const char *key, *job, *hyper; /* options.json, job file [train], metrics.json hyperparameters */
    unsigned flags;
    const char *help;
    const char *const *names;   /* ENUM: the values' names */
    int nnames;
} fm_opt;

extern const fm_opt fm_ft_opt_table[];
extern const int fm_ft_opt_count;
extern const fm_opt fm_pt_opt_table[];
extern const int fm_pt_opt_count;

/* The row of table[0..n) with field name `field`, or NULL. */
const fm_opt *fm_opt_find(const fm_opt *table, int n, const char *field);
/* The value of enum name s in names[0..n), or -1. */
int fm_opt_enum_value(const char *const *names, int n, const char *s);
/* "a, b or c" for names[0..n) into buf. */
void fm_opt_enum_list(const char *const *names, int n, char *buf, size_t cap);
/* The field of row r in the struct at obj. */
static inline void *fm_opt_ptr(const fm_opt *r, void *obj) { return (char *)obj + r->offset; }
static inline const void *fm_opt_cptr(const fm_opt *r, const void *obj) { return (const char *)obj + r->offset; }
/* Set row r of obj from text (a command-line or job-file value), checked
 * against the row's range or names; FM_ERR naming `label` (e.g. "--lr" or
 * "lr"), what was expected and what was found. NOFLAG and FLAG take
 * true/yes/1 or false/no/0; STR keeps the pointer; LIST appends to an array
 * of room the caller provides. */
int fm_opt_parse(const fm_opt *r, void *obj, const char *label, const char *text);

/* The integer kinds (INT, I64, U64, NOFLAG, FLAG, ENUM) of row r, read and set. */
long long fm_opt_get_int(const fm_opt *r, const void *obj);
void fm_opt_set_int(const fm_opt *r, void *obj, long long v);

#endif
