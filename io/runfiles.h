/* runfiles.h: the files of a run directory: metrics.json (one JSON object),
 * log.jsonl (one JSON object per line, appended as training goes), and the
 * GLUE submission and logits TSVs. JSON is built and written with jansson. */
#ifndef FM_RUNFILES_H
#define FM_RUNFILES_H

#include <jansson.h>
#include <stddef.h>

/* Write obj to path atomically, keys sorted, 2-space indent, a final newline. */
int fm_json_write(const char *path, const json_t *obj);
/* Read a JSON object from path; FM_ERR naming the file, line and column. */
int fm_json_read(const char *path, json_t **obj);
/* The first key (b's keys in order, then a's that b lacks) whose value
 * differs between the JSON objects a and b or that only one of them has,
 * leaving out the keys in skip (NULL-terminated; or NULL); NULL when they
 * agree. The key belongs to a or b. */
const char *fm_json_first_difference(const json_t *a, const json_t *b, const char *const *skip);
/* Which saved options fm_options_compare checks against the current ones:
 * a training state's, to resume from it (the path keys' values resolved as
 * files), or a finished job's options.json, to skip the job (the path keys
 * not compared: the run directory stays valid when the model or data move). */
typedef enum { FM_OPTS_RESUME, FM_OPTS_FINISHED } fm_opts_case;
/* FM_OK when the option objects saved (read from path) and cur (this run's)
 * agree. The keys in path_keys (NULL-terminated, or NULL) hold file names,
 * or arrays of them: to resume, two spellings of one existing file agree
 * (runs/x and ./runs/../runs/x); for a finished job they are left out. The
 * keys in skip (NULL-terminated, or NULL) are not compared. Otherwise an
 * error naming path, the first option that differs and both values, and
 * how to go on. */
int fm_options_compare(const char *path, const json_t *saved, const json_t *cur, const char *const *path_keys,
                       const char *const *skip, fm_opts_case c);
/* fm_options_compare(FM_OPTS_RESUME) of the JSON texts saved (a state
 * file's "options" metadata, NULL when absent) and cur; not an object: an
 * error naming path. */
int fm_options_agree(const char *path, const char *saved, const char *cur, const char *const *path_keys,
                     const char *const *skip);

/* An append-only JSON-lines log; each line is flushed as it is written. */
typedef struct {
    void *fp; /* FILE* */
    char *path;
} fm_jsonl;
/* Create (truncate) path. */
int fm_jsonl_open(fm_jsonl *l, const char *path);
/* Append obj as one compact line (keys in insertion order). */
int fm_jsonl_append(fm_jsonl *l, const json_t *obj);
int fm_jsonl_close(fm_jsonl *l);
/* Reopen path for appending after cutting it to its first `bytes` bytes (a
 * resumed run drops the lines logged after its checkpoint). FM_ERR when the
 * file is shorter than that. */
int fm_jsonl_resume(fm_jsonl *l, const char *path, long long bytes);
/* Flush and fsync the log; its length in bytes into *bytes. */
int fm_jsonl_sync(fm_jsonl *l, long long *bytes);

/* A GLUE submission file: header "index\tprediction", then one row per
 * example: ids[i] (or i when ids is NULL) and labels[i] (classification), or
 * scores[i] with 3 decimals (regression, labels NULL). Written atomically. */
int fm_write_submission(const char *path, const char *const *ids, const char *const *labels, const float *scores,
                        size_t n);
/* Raw scores: header "index\t<names...>", then ids[i] and the k values of
 * row i of values (n, k) at full float precision (%.9g). */
int fm_write_logits(const char *path, const char *const *ids, const char *const *names, const float *values,
                    size_t n, int k);

#endif
