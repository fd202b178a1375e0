/* synth.h: the demo's synthetic English-like language, from a seeded
 * generator (rng.h, purpose FM_RNG_DATA): a corpus for pre-training, the
 * vocabulary that covers it, and examples for the eight GLUE tasks whose
 * labels follow from the text:
 *
 *   SST-2  sentiment: the polarity of the one sentiment adjective (good,
 *          wonderful ... / bad, awful ...), flipped by "does not".
 *   CoLA   grammaticality: a well-formed sentence, or one with a word-order
 *          violation (noun before its determiner, verb moved to the end,
 *          subject after the object, two adjacent words swapped).
 *   MRPC   paraphrase: the same subject and object, the other words reworded
 *          with synonyms and the time or place moved (1), or another subject
 *          and object (0).
 *   STS-B  similarity: of the five content words (two adjectives, subject,
 *          verb, object) the second sentence keeps k, uniform in 0..5; the
 *          score is k.
 *   QQP    duplicate questions: the same question reworded (1) or one about
 *          other nouns (0).
 *   MNLI   entailment: the hypothesis keeps part of the premise (entailment),
 *          negates its verb (contradiction) or adds something the premise
 *          does not say (neutral).
 *   QNLI   the sentence names the nouns the question asks about (entailment)
 *          or others (not_entailment).
 *   RTE    entailment as in MNLI, against a negated hypothesis or one about
 *          another subject and object (not_entailment), half and half.
 *
 * The pair tasks hinge on whether salient nouns recur across the two texts,
 * which the corpus (questions with their answers, sentences with their
 * rewordings) teaches in pre-training. Sentences are short: a pair fits in
 * 32 tokens.
 *
 * Everything is a pure function of (seed, task, split, index): the same
 * bytes on every run and machine. Text is lower case, words and
 * punctuation separated by single spaces. */
#ifndef FM_SYNTH_H
#define FM_SYNTH_H

#include <stddef.h>
#include <stdint.h>

/* A growable string. */
typedef struct {
    char *s;
    size_t n, cap;
} fm_sbuf;
void fm_sbuf_add(fm_sbuf *b, const char *s);
void fm_sbuf_addf(fm_sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void fm_sbuf_free(fm_sbuf *b);

/* The synthetic tasks, in the order of fm_synth_task_names. */
#define FM_SYNTH_NTASKS 8
extern const char *const fm_synth_task_names[FM_SYNTH_NTASKS];

/* One generated example: texts (b NULL for single-sentence tasks), a label
 * index in the GLUE task's label order (io/glue.h), or a score for STS-B. */
typedef struct {
    fm_sbuf a, b;
    int label;
    double score;
} fm_synth_example;
void fm_synth_example_free(fm_synth_example *e);

/* Example `index` of `split` (0 train, 1 dev, 2 test, 3 dev/test mismatched:
 * MNLI's other genres) of task `task` (index into fm_synth_task_names). */
void fm_synth_example_make(fm_synth_example *e, uint64_t seed, int task, int split, uint64_t index);

/* Corpus line `index` ("" marks a document break: every 8th line). */
void fm_synth_corpus_line(fm_sbuf *out, uint64_t seed, uint64_t index);

/* The vocabulary, one token per line in id order: [PAD] 0, [unused0..98]
 * 1..99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103 (BERT's ids), then
 * punctuation, every word of the language, "##s", and the letters a-z and
 * ##a-##z so that any lower-case word has pieces. */
void fm_synth_vocab(fm_sbuf *out);

#endif
