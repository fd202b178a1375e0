/* tokjson.h: HuggingFace's tokenizer files for BERT: tokenizer.json (the
 * whole pipeline: normalizer, pre-tokenizer, WordPiece model with its
 * vocabulary, post-processor, added tokens) and tokenizer_config.json (the
 * flags of a vocab.txt tokenizer), and the choice between them for a model
 * directory. */
#ifndef FM_IO_TOKJSON_H
#define FM_IO_TOKJSON_H

#include <stddef.h>

#include "tokenizer.h"

/* Build a tokenizer from len bytes of tokenizer.json text (`name` prefixes
 * messages). What the file says overrides base's do_lower_case,
 * strip_accents, clean_text, tokenize_chinese_chars and
 * max_input_chars_per_word; the rest of base (NULL: the defaults) stays.
 * Accepted: a WordPiece model, a BertNormalizer or none, a BertPreTokenizer,
 * a post-processor that builds [CLS] A [SEP] B [SEP] (TemplateProcessing or
 * BertProcessing) or none. Anything else is an error naming the field, what
 * was expected and what was found. */
int fm_tokenizer_json_parse(fm_tokenizer *t, const char *name, const char *data, size_t len,
                            const fm_tokenizer_opts *base);
int fm_tokenizer_json_load(fm_tokenizer *t, const char *path, const fm_tokenizer_opts *base);

/* Read do_lower_case, strip_accents (null: follow do_lower_case) and
 * tokenize_chinese_chars from tokenizer_config.json text into *o; absent
 * keys leave *o as it is. */
int fm_tokenizer_config_parse(fm_tokenizer_opts *o, const char *name, const char *data, size_t len);

/* The file names in a model directory. */
#define FM_TOKENIZER_JSON "tokenizer.json"
#define FM_TOKENIZER_CONFIG "tokenizer_config.json"

/* The tokenizer of model directory dir: dir/tokenizer.json when it exists,
 * else dir/vocab.txt with the flags of dir/tokenizer_config.json when that
 * exists. lowercase >= 0 then forces the case (0: cased, keep accents too;
 * 1: uncased, strip_accents as the file says). *source (may be NULL) gets the
 * path of the file the vocabulary came from (free with free()). */
int fm_tokenizer_load_dir(fm_tokenizer *t, const char *dir, const fm_tokenizer_opts *base, int lowercase,
                          char **source);

#endif
