/* demodata.h: the demo's data set on disk, from the synthetic language of
 * src/synth.h: DIR/corpus.txt (pre-training text, one sentence per line,
 * blank lines between documents), DIR/vocab.txt, and DIR/glue/<TASK>/ with
 * each of the eight GLUE tasks in GLUE's own file layouts (the ones io/glue.c
 * reads): CoLA without a header (source, label, "*" for unacceptable,
 * sentence), SST-2 (sentence, label), MRPC with a byte-order mark
 * (Quality, #1 ID, #2 ID, #1 String, #2 String), STS-B's ten columns, QQP's
 * six, MNLI's twelve with dev_matched/dev_mismatched and
 * test_matched/test_mismatched, QNLI and RTE (index, text, text, label); test
 * files with an index column and no label. Every file is written atomically
 * and is the same bytes for the same seed and scale. */
#ifndef FM_IO_DEMODATA_H
#define FM_IO_DEMODATA_H

#include <stdint.h>

/* Examples per split at scale 1: train, dev, test (MNLI: per matched and mismatched set). */
void fm_demo_sizes(int task, double scale, int *ntrain, int *ndev, int *ntest);
/* Corpus lines at scale 1 (blank lines included). */
int64_t fm_demo_corpus_lines(double scale);

/* Write the whole data set under dir (created). */
int fm_demo_write_data(const char *dir, uint64_t seed, double scale);

#endif
