/* runjob.h: what `finemask run` and `finemask report` share: a job's record
 * (the JSON the report reads) and the run directory's files. */
#ifndef FM_RUNJOB_H
#define FM_RUNJOB_H

#include <jansson.h>

#include "jobfile.h"

/* {"name", "index", "task", "mode", "variant", "weights", "seed", "sparsity"}. */
json_t *fm_job_record(const fm_job *j);
/* The job's variant: the freeze set, "s<percent>" for a supermask, "" for full. */
void fm_job_variant(const fm_job *j, char *out, size_t cap);

#endif
