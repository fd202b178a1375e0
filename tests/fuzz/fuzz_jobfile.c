/* fuzz_jobfile.c: bytes as a job file (INI), read from a file as `finemask
 * run` reads it. The reader must either refuse them with a message that
 * names the file, or give a sweep whose expansion holds together: at least
 * one job, names unique, every job's mode, weights and initial sparsity
 * among what the file allows. */
#define _GNU_SOURCE
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fm.h"
#include "jobfile.h"

static char path[64];

static void remove_file(void) { unlink(path); }

static int same_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        /* memory-backed where there is one: a file on disk per input made
         * this target four times slower than the others */
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/fuzz_jobfile.%d.ini", dir, (int)getpid());
        atexit(remove_file);
    }
    FILE *f = fopen(path, "wb");
    assert(f);
    assert(fwrite(data, 1, size, f) == size);
    fclose(f);
    fm_jobfile jf;
    if (fm_jobfile_read(&jf, path) != FM_OK) {
        assert(strncmp(fm_last_error(), path, strlen(path)) == 0);
        return 0;
    }
    assert(jf.ntasks > 0 && jf.nmodes > 0 && jf.model && jf.data);
    fm_job *jobs = NULL;
    int n = 0;
    if (fm_jobfile_expand(&jf, &jobs, &n) == FM_OK) {
        assert(n > 0);
        char **names = malloc(sizeof(char *) * (size_t)n);
        for (int i = 0; i < n; i++) {
            const fm_job *j = &jobs[i];
            assert(j->index == i);
            assert(!strcmp(j->mode, "full") || !strcmp(j->mode, "freeze") || !strcmp(j->mode, "supermask"));
            assert(!strcmp(j->weights, "pretrained") || !strcmp(j->weights, "shuffled") || !strcmp(j->weights, "random"));
            assert(j->sparsity >= 0 && j->sparsity < 1);
            assert(j->name[0] != '\0');
            names[i] = jobs[i].name;
        }
        qsort(names, (size_t)n, sizeof *names, same_name);
        for (int i = 1; i < n; i++) {
            if (!strcmp(names[i - 1], names[i])) {
                fprintf(stderr, "two jobs named %s\n", names[i]);
                abort();
            }
        }
        int *order = malloc(sizeof(int) * (size_t)n);
        fm_jobs_order(jobs, n, order);
        free(order);
        free(names);
        free(jobs);
    } else {
        assert(fm_last_error()[0] != '\0');
    }
    fm_jobfile_free(&jf);
    return 0;
}
