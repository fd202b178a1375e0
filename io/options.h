/* options.h: the option tables (src/opts.h) as files: RUN_DIR/options.json
 * (what a fine-tuning run's results depend on, and what a resumed run must
 * repeat), the pre-training state's "options", and metrics.json's
 * "hyperparameters". Every key and value comes from the tables. */
#ifndef FM_IO_OPTIONS_H
#define FM_IO_OPTIONS_H

#include <jansson.h>

#include "opts.h"

/* The rows of table[0..n) that have a json key, from obj, as a JSON object
 * (a new reference). A STR that is NULL is null, NOFLAG and FLAG booleans,
 * enums their names, LIST an array of strings. */
json_t *fm_opts_to_json(const fm_opt *table, int n, const void *obj);

/* The options that decide a run's results, as compact JSON text (sorted
 * keys, 17 significant digits; free with free()): what RUN_DIR/options.json
 * holds and the state file records. */
char *fm_ft_opts_json(const fm_ft_opts *o);
/* The options.json keys that do not apply to a run of the given mode (the
 * supermask's options, FM_OPT_G_MASK, unless mode is "supermask"; also
 * when mode is NULL or unknown, nothing), NULL-terminated: what comparing
 * two runs' options leaves out, so that a new supermask default does not
 * make a finished full fine-tuning look like another run. */
const char *const *fm_ft_opts_unused(const char *mode);
/* Read RUN_DIR/options.json into o (the other fields at their defaults,
 * out_dir = run_dir; strings point into *keep, which the caller
 * json_decref's after o's last use). FM_ERR naming the file and the key
 * that is missing, unknown or of the wrong type. */
int fm_ft_opts_load(const char *run_dir, fm_ft_opts *o, void **keep);
/* The first row marked FM_OPT_RESUME (and given[i], when given is not
 * NULL) whose value differs between a and b, or NULL. */
const fm_opt *fm_ft_opts_first_difference(const fm_ft_opts *a, const fm_ft_opts *b, const unsigned char *given);
/* Row r's value in obj as JSON text (free with free()), for messages. */
char *fm_opt_value_text(const fm_opt *r, const void *obj);

/* metrics.json's "hyperparameters": the rows with a hyper key (a new
 * reference; the caller adds what it derives, e.g. the step counts). */
json_t *fm_ft_hyper_json(const fm_ft_opts *o);

/* The options a resumed pre-training run must share with the run that saved
 * the state, as compact JSON text in the table's order (free with free());
 * corpus_content (a digest of the packed rows) follows the corpus list under
 * the key "corpus-content"; "init" only when there is one. */
char *fm_pt_opts_json(const fm_pt_opts *o, const char *corpus_content);

#endif
