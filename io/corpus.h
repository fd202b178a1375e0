/* corpus.h: plain-text pre-training corpora: UTF-8 files read line by line;
 * every line with a non-space character is one unit of text (a sentence, or
 * a whole document when a file holds one per line); empty lines (document
 * breaks) carry nothing. A \r before \n is dropped. */
#ifndef FM_IO_CORPUS_H
#define FM_IO_CORPUS_H

#include <stdint.h>

typedef struct {
    char **line;      /* (n) NUL-terminated lines, pointing into the buffers */
    int32_t *lineno;  /* (n) 1-based line in its file */
    int32_t *file;    /* (n) index of its file in the path list */
    int64_t n;
    char **bufs;      /* (nfiles) file contents */
    int nfiles;
} fm_corpus;

/* Read the files in order. FM_ERR naming the file when one cannot be read,
 * or when all of them together hold no text. */
int fm_corpus_read(fm_corpus *c, const char *const *paths, int npaths);
void fm_corpus_free(fm_corpus *c);

#endif
