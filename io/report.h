/* report.h: what `finemask run` gathers from every job, its wire format
 * (gathered over MPI to rank 0), and the sweep's report/ directory.
 *
 * report/ (written atomically, file by file):
 *   science.json    the science only: deterministic, the same bytes for an
 *                   interrupted and resumed run as for an uninterrupted one
 *                   (with "claims" when the sweep has full fine-tuning and a
 *                   supermask over pre-trained weights of a task: the gap
 *                   and the shuffled / random controls, see report.c)
 *   science.md      the same as Markdown tables
 *   scores.csv      per task, mode, variant, weights: score mean and std over
 *                   seeds (and each job's Bernoulli-sample std), the baseline
 *   sparsity.csv    per job with a mask: final sparsity and task storage
 *   layer_sparsity.csv  per job with a mask and tensor: sparsity
 *   overlap.csv     per pair of tasks: shared zeros beside random
 *   compute.json    times: per job wall time, examples/s, communication
 *                   (seconds and bytes); per team busy and idle time;
 *                   speedup and efficiency against a baseline run
 *   jobs_compute.csv, teams.csv  the same as tables
 *   report.md       science.md followed by the compute tables
 *   report.json     {"science": ..., "compute": ...}
 *   fig3.{png,svg}, fig4.{png,svg}, fig6.{png,svg} (and their .dat/.gp):
 *                   score against sparsity, per-layer sparsity, the overlap
 *                   matrix; each only when its data is present and gnuplot is
 *                   installed. Figure 2 needs distance data, which a sweep
 *                   does not produce: it is skipped with a note. */
#ifndef FM_REPORT_H
#define FM_REPORT_H

#include <jansson.h>
#include <stddef.h>

#include "mask.h"

/* One job's outcome. rec holds: name, index, task, mode, variant, weights,
 * seed, sparsity (initial), status ("done" or "failed"), error (failed
 * only), metrics (metrics.json's object, done only) and compute (wall_seconds,
 * train_seconds, examples, examples_per_second, comm_seconds, comm_bytes,
 * team). mask.n is 0 when the job has no mask. A mask may come without its
 * bits (every mask.t[i].bits NULL: names, shapes, numel and ones only): the
 * report then reads them from RUN_DIR/NAME/mask.safetensors when it counts
 * overlaps, a few masks at a time, so no process ever holds every mask. */
typedef struct {
    json_t *rec;
    fm_mask mask;
} fm_job_result;

void fm_result_free(fm_job_result *r);

/* Append r to (*buf, *len) (realloc'd): u64 JSON length, the compact JSON,
 * u32 mask tensor count, u32 1 when the bits follow (0: headers only), then
 * per tensor: name (96 bytes), ndim (u32), shape (2 x i64), numel (u64), ones
 * (u64) and, with_bits and r's mask has them, the packed bits. */
void fm_result_pack(const fm_job_result *r, int with_bits, unsigned char **buf, size_t *len);
/* The bytes of r's packed mask bits (what with_bits adds to the record). */
size_t fm_result_bits_bytes(const fm_job_result *r);
/* Free r's mask bits, keeping each tensor's name, shape, numel and ones. */
void fm_result_drop_bits(fm_job_result *r);
/* Read one result from buf[0..len); *used = bytes consumed. FM_ERR on
 * a truncated or malformed record. */
int fm_result_unpack(fm_job_result *r, const unsigned char *buf, size_t len, size_t *used);

/* The mask of a job's run directory: DIR/mask.safetensors (the mask file
 * format, maskfile.h), read as packed bits with the shapes and counts its
 * metadata states. FM_OK with m->n == 0 when the file is absent. */
int fm_run_mask_read(const char *job_dir, fm_mask *m);

/* Write RUN_DIR/report/ from n results (any order: sorted by job index here)
 * and run (the run's description: name, jobfile, layout, teams[], and
 * optionally baseline_wall_seconds for a scaling study). A mask without its
 * bits is read from RUN_DIR/NAME/mask.safetensors when its overlaps are
 * counted (and must have the tensors and counts the result states), then
 * freed: at most one family's masks (one per task) are read at a time. */
int fm_report_write(const char *run_dir, fm_job_result *res, int n, const json_t *run);

/* The report's main table: the first table of REPORT_DIR/science.md with
 * the heading above it, as text (free with free(); NULL when science.md has
 * no table). FM_ERR when the file cannot be read. */
int fm_report_main_table(const char *report_dir, char **text);

#endif
