/* vocab.h: BERT's vocab.txt: one token per line, the id of a token is its
 * 0-based line number. */
#ifndef FM_IO_VOCAB_H
#define FM_IO_VOCAB_H

#include <stddef.h>

#include "tokenizer.h"

/* Parse len bytes of vocab.txt text; `name` (the file name) prefixes error
 * messages. A trailing \r on a line (CRLF) is dropped, a final newline is
 * optional. Errors name the file and line: an empty file, an empty line, a
 * token seen before (with the line of its first occurrence), invalid UTF-8. */
int fm_vocab_parse(fm_vocab *v, const char *name, const char *data, size_t len);
/* Read and parse the file at path. */
int fm_vocab_load(fm_vocab *v, const char *path);

/* The lines of the vocab.txt at path (a last line without a newline
 * counts), the vocab_size a model for it needs. FM_ERR for an empty file or
 * more than 2^24 lines. */
int fm_vocab_count(const char *path, int *n);

/* Load path and build a tokenizer with opts (NULL: the defaults). */
int fm_tokenizer_load(fm_tokenizer *t, const char *vocab_path, const fm_tokenizer_opts *opts);

#endif
