/* cmd_report.c: `finemask report RUN_DIR`: rebuild RUN_DIR/report/ from the
 * run directory's files (run.json, each job's metrics.json, compute.json and
 * mask), the same report `finemask run` writes from the gathered results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fileio.h"
#include "fm.h"
#include "report.h"
#include "runfiles.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask report RUN_DIR\n"
            "\n"
            "Rebuild RUN_DIR/report/ (science.md/json, report.md/json, CSV tables, figures)\n"
            "from RUN_DIR/run.json and every job's directory. A job without metrics.json is\n"
            "reported as failed, with the error run.json recorded for it.\n");
}

int fm_cmd_report(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fm_fail("report: expected one RUN_DIR (see finemask report --help)");
        return fm_cli_fail();
    }
    const char *dir = argv[1];
    char *p = fm_path_join(dir, "run.json");
    json_t *run = NULL;
    int rc = fm_json_read(p, &run);
    free(p);
    if (rc != FM_OK) return fm_cli_fail();
    json_t *jobs = json_object_get(run, "jobs"), *fails = json_object_get(run, "failures");
    if (!json_is_array(jobs)) {
        json_decref(run);
        fm_fail("%s/run.json: expected an array 'jobs'", dir);
        return fm_cli_fail();
    }
    size_t n = json_array_size(jobs);
    fm_job_result *res = fm_xcalloc(n + 1, sizeof *res);
    rc = FM_OK;
    for (size_t i = 0; i < n && rc == FM_OK; i++) {
        json_t *rec = json_deep_copy(json_array_get(jobs, i));
        json_object_del(rec, "work");
        res[i].rec = rec;
        const char *name = json_string_value(json_object_get(rec, "name"));
        if (!name || strchr(name, '/')) {
            rc = fm_fail("%s/run.json: job %zu has no valid name", dir, i);
            break;
        }
        char *jd = fm_path_join(dir, name), *mp = fm_path_join(jd, "metrics.json"), *cp = fm_path_join(jd, "compute.json");
        json_t *met = NULL, *comp = NULL;
        const char *ms = NULL;
        if (fm_file_exists(mp)) {
            rc = fm_json_read(mp, &met);
            ms = rc == FM_OK ? json_string_value(json_object_get(met, "status")) : NULL;
        }
        if (ms && !strcmp(ms, "diverged")) {
            /* a job that stopped at a step whose loss or gradient norm was not finite */
            const char *e = json_string_value(json_object_get(fails, name));
            json_object_set_new(rec, "status", json_string("diverged"));
            json_object_set_new(rec, "error", json_string(e ? e : "diverged (metrics.json)"));
            json_decref(met);
            met = NULL;
        } else if (met) {
            rc = fm_run_mask_read(jd, &res[i].mask);
            json_object_set_new(rec, "status", json_string("done"));
            json_object_set_new(rec, "metrics", met);
        } else if (rc == FM_OK) {
            const char *e = json_string_value(json_object_get(fails, name));
            json_object_set_new(rec, "status", json_string("failed"));
            json_object_set_new(rec, "error", json_string(e ? e : "not run (no metrics.json)"));
        }
        if (rc == FM_OK && fm_file_exists(cp) && fm_json_read(cp, &comp) == FM_OK)
            json_object_set_new(rec, "compute", comp);
        char *dp = fm_path_join(jd, "distance.json");
        json_t *dj = NULL;
        if (rc == FM_OK && met && fm_file_exists(dp) && fm_json_read(dp, &dj) == FM_OK)
            json_object_set_new(rec, "distance", dj);
        free(dp);
        free(jd);
        free(mp);
        free(cp);
    }
    if (rc == FM_OK) rc = fm_report_write(dir, res, (int)n, run);
    for (size_t i = 0; i < n; i++) fm_result_free(&res[i]);
    free(res);
    json_decref(run);
    if (rc != FM_OK) return fm_cli_fail();
    fm_log("report written to %s/report", dir);
    return 0;
}
