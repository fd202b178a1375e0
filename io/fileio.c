/* fileio.c: whole-file reads, atomic writes, memory maps (see fileio.h). */
#define _GNU_SOURCE
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm.h"

int fm_read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return fm_fail("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = fm_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = fm_xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return fm_fail("%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return FM_OK;
}

static int fsync_dir_of(const char *path) {
    char *copy = fm_xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return FM_OK; /* best effort */
    fsync(fd);
    close(fd);
    return FM_OK;
}

int fm_atomic_open(fm_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = fm_xstrdup(path);
    size_t n = strlen(path) + 32;
    f->tmp = fm_xmalloc(n);
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        int e = errno;
        free(f->path);
        free(f->tmp);
        memset(f, 0, sizeof *f);
        return fm_fail("%s: cannot create: %s", path, strerror(e));
    }
    return FM_OK;
}

int fm_atomic_write(fm_atomic_file *f, const void *data, size_t len) {
    if (f->failed) return FM_ERR;
    if (len && fwrite(data, 1, len, (FILE *)f->fp) != len) {
        f->failed = errno ? errno : EIO;
        return fm_fail("%s: write failed: %s", f->path, strerror(f->failed));
    }
    return FM_OK;
}

void fm_atomic_abort(fm_atomic_file *f) {
    if (f->fp) fclose((FILE *)f->fp);
    if (f->tmp) unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    memset(f, 0, sizeof *f);
}

int fm_atomic_commit(fm_atomic_file *f) {
    FILE *fp = (FILE *)f->fp;
    int rc = FM_OK;
    if (f->failed || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        rc = fm_fail("%s: write failed: %s", f->path, strerror(f->failed ? f->failed : errno));
    }
    if (fclose(fp) != 0 && rc == FM_OK) rc = fm_fail("%s: close failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (rc == FM_OK && rename(f->tmp, f->path) != 0)
        rc = fm_fail("%s: rename failed: %s", f->path, strerror(errno));
    if (rc != FM_OK) {
        unlink(f->tmp);
    } else {
        fsync_dir_of(f->path);
    }
    free(f->path);
    free(f->tmp);
    memset(f, 0, sizeof *f);
    return rc;
}

int fm_write_file_atomic(const char *path, const void *data, size_t len) {
    fm_atomic_file f;
    if (fm_atomic_open(&f, path) != FM_OK) return FM_ERR;
    if (fm_atomic_write(&f, data, len) != FM_OK) {
        fm_atomic_abort(&f);
        return FM_ERR;
    }
    return fm_atomic_commit(&f);
}

int fm_mmap_open(fm_mmap *m, const char *path) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fm_fail("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fm_fail("%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fm_fail("%s: not a regular file", path);
    }
    m->len = (size_t)st.st_size;
    if (m->len > 0) {
        void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return fm_fail("%s: mmap failed: %s", path, strerror(e));
        }
        m->data = p;
    }
    close(fd);
    return FM_OK;
}

void fm_mmap_close(fm_mmap *m) {
    if (m->data && m->len) munmap((void *)m->data, m->len);
    memset(m, 0, sizeof *m);
}

void fm_mmap_drop(const fm_mmap *m, const void *p, size_t len) {
    const unsigned char *a = p, *base = m->data;
    if (!base || a < base || a + len > base + m->len) return;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t b = ((size_t)(a - base) + page - 1) / page * page, e = (size_t)(a - base + len) / page * page;
    if (e > b) madvise((void *)(base + b), e - b, MADV_DONTNEED);
}

int fm_mkdirs(const char *path) {
    char *p = fm_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                fm_fail("%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return FM_ERR;
            }
            *s = '/';
        }
    }
    int rc = FM_OK;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = fm_fail("%s: cannot create directory: %s", p, strerror(errno));
    free(p);
    return rc;
}

char *fm_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = fm_xmalloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

int fm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int fm_test_fail_write(const char *what, const char *path) {
    const char *e = getenv("FINEMASK_TEST_FAIL_WRITE");
    if (!e || !*e) return FM_OK;
    size_t n = strlen(what);
    for (const char *p = e; *p;) {
        const char *q = strchr(p, ',');
        size_t k = q ? (size_t)(q - p) : strlen(p);
        if (k == n && !strncmp(p, what, n)) {
            fm_log("FINEMASK_TEST_FAIL_WRITE=%s: the disk is full while writing %s", what, path);
            return fm_fail("%s: write failed: %s", path, strerror(ENOSPC));
        }
        if (!q) break;
        p = q + 1;
    }
    return FM_OK;
}

void fm_remove_stale_temps(const char *dir) {
    char *pat = fm_path_join(dir, "*.tmp.*");
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            fm_log("%s: removing a temporary file left by a killed run", g.gl_pathv[i]);
            unlink(g.gl_pathv[i]);
        }
        globfree(&g);
    }
    free(pat);
}
