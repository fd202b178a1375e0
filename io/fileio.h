/* fileio.h: small file helpers every format uses: whole-file reads, atomic
 * writes (temporary file, fsync, rename), memory maps, paths. */
#ifndef FM_FILEIO_H
#define FM_FILEIO_H

#include <stddef.h>

/* Read a whole file into a NUL-terminated buffer (free with free()).
 * FM_ERR with "PATH: <strerror>" on failure. */
int fm_read_file(const char *path, char **data, size_t *len);

/* Write a file atomically: data goes to PATH.tmp.<pid>, is fsynced, then
 * renamed over PATH and the directory fsynced. A crash leaves either the old
 * file or the new one, never a half-written one. */
int fm_write_file_atomic(const char *path, const void *data, size_t len);

/* An atomic writer for files built piece by piece. */
typedef struct {
    char *path, *tmp;
    void *fp; /* FILE* */
    int failed;
} fm_atomic_file;
int fm_atomic_open(fm_atomic_file *f, const char *path);
int fm_atomic_write(fm_atomic_file *f, const void *data, size_t len);
/* Flush, fsync and rename into place; on any earlier failure remove the
 * temporary file and return FM_ERR. */
int fm_atomic_commit(fm_atomic_file *f);
void fm_atomic_abort(fm_atomic_file *f);
/* Remove the temporary files ("*.tmp.*") a killed atomic writer left in dir,
 * logging each. */
void fm_remove_stale_temps(const char *dir);

/* A read-only memory map of a whole file. */
typedef struct {
    const unsigned char *data;
    size_t len;
} fm_mmap;
int fm_mmap_open(fm_mmap *m, const char *path);
void fm_mmap_close(fm_mmap *m);
/* Let the pages wholly inside [p, p + len) of m go from this process's
 * memory (they are read again from the file when touched): a file read
 * once, piece by piece, then does not stay resident as a whole. Nothing
 * when p is not inside m. */
void fm_mmap_drop(const fm_mmap *m, const void *p, size_t len);

/* mkdir -p. */
int fm_mkdirs(const char *path);
/* dir + "/" + name into a new string (free with free()). */
char *fm_path_join(const char *dir, const char *name);
int fm_file_exists(const char *path);
/* Test hook (tests only): FM_ERR, as a full disk would ("PATH: write failed:
 * No space left on device"), when the environment variable
 * FINEMASK_TEST_FAIL_WRITE lists `what` (comma-separated: "metrics", "mask",
 * "model", "log", "compute"); else FM_OK. The callers ask it just before
 * writing the file it names, and write nothing when it fails. */
int fm_test_fail_write(const char *what, const char *path);

#endif
