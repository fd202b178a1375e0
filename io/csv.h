/* csv.h: CSV files as RFC 4180 quotes them, for every table finemask writes.
 *
 * Fields are separated by commas and records end with a line feed. A field
 * that holds a comma, a double quote, a carriage return or a line feed is
 * enclosed in double quotes, with each double quote inside doubled
 * ("key,word_embeddings" -> "\"key,word_embeddings\""); every other field is
 * written as it is, so numbers and plain names look as they did. */
#ifndef FM_CSV_H
#define FM_CSV_H

#include <stdio.h>

#include "fm.h"

/* One record being written to f. */
typedef struct {
    FILE *f;
    int fields; /* written so far */
} fm_csv;

/* Start a record on f. */
fm_csv fm_csv_start(FILE *f);
/* Append a field: the text s (NULL: an empty field), quoted when it must be. */
void fm_csv_str(fm_csv *r, const char *s);
/* Append a field formatted as printf formats it (a number, usually), quoted
 * when it must be. */
void fm_csv_fmt(fm_csv *r, const char *fmt, ...) FM_PRINTF(2, 3);
/* End the record (a line feed). */
void fm_csv_end(fm_csv *r);

/* A whole record of n text fields (a header line). */
void fm_csv_row(FILE *f, int n, const char *const *fields);

#endif
