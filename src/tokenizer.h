/* tokenizer.h: BERT's WordPiece tokenizer, id for id the same as
 * HuggingFace's `tokenizers` on any text (the pipeline a BERT tokenizer.json
 * describes, as @huggingface/tokenizers 0.2.0 runs it), and the classifier
 * input encoding of run_classifier: [CLS] a [SEP] (b [SEP]), token types,
 * longest-first truncation, padding.
 *
 * The stages (FM_TOK_HF, the default; flags from tokenizer.json's
 * BertNormalizer or from tokenizer_config.json):
 *
 *  1. Added tokens: the exact text of a token that is not normalized
 *     ("[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]" and whatever
 *     tokenizer.json adds) is that token, longest match first from the left;
 *     lstrip/rstrip remove the whitespace beside it. The text between is
 *     tokenized on its own. split_special_tokens turns this off.
 *  2. clean_text: U+0000, U+FFFD and categories Cc, Cf, Co are dropped, but
 *     \t \n \r, which like every other JavaScript whitespace character (Zs,
 *     U+2028, U+2029) become a space. Unassigned code points (Cn) stay.
 *  3. handle_chinese_chars: a space on each side of a code point of the
 *     Basic Multilingual Plane in 4E00-9FFF, 3400-4DBF or F900-FAFF (also
 *     unassigned ones: U+FAEA). CJK ideographs beyond U+FFFF get none.
 *  4. lowercase: the full, context-sensitive lower-case mapping of the
 *     whole text ("İ" is "i" U+0307; a final capital sigma is "ς").
 *  5. strip accents (strip_accents, or when it is unset, lowercase): NFD,
 *     then every Mn is dropped. No other normalisation (no NFC).
 *  6. Added tokens that are normalized are matched in the normalized text.
 *  7. Pre-tokenization: words are the runs of characters that are neither
 *     whitespace nor punctuation (category P*, ASCII 33-47, 58-64, 91-96,
 *     123-126); each punctuation character is a word of its own.
 *  8. WordPiece: greedy longest match first with the continuation prefix
 *     ("##"); a word of more than max_input_chars_per_word code points, or
 *     one no vocabulary pieces cover, is a single unknown token.
 *
 * Unicode: categories, case mappings, decompositions and combining classes
 * are those of unicode.h (Unicode 17.0: utf8proc's data corrected by a
 * generated table).
 *
 * FM_TOK_PYTHON is HuggingFace's Python BertTokenizer instead (Google's
 * tokenization.py plus NFC and special-token handling) with utf8proc's own
 * Unicode: every C* category is dropped (Cn too), all eight CJK ranges are
 * spaced, lower-casing is per character (no final sigma), NFC before the
 * split on whitespace, accents stripped word by word. */
#ifndef FM_TOKENIZER_H
#define FM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* ---- the vocabulary: id <-> token, with a hash table for lookups ---- */

typedef struct {
    char **tokens;     /* (n) id -> NUL-terminated UTF-8 token */
    uint32_t *lens;    /* (n) byte lengths */
    int32_t n, cap;
    int32_t *slots;    /* (nslots) open-addressing table of ids, -1 = empty */
    size_t nslots;     /* a power of two, at least 2n */
    size_t max_len;    /* longest token, in bytes */
} fm_vocab;

void fm_vocab_init(fm_vocab *v);
void fm_vocab_free(fm_vocab *v);
/* Append a token (len bytes, not NUL-terminated) with the next id. Returns
 * the id, or FM_ERR when the token is already present (no message recorded:
 * the caller knows the file and line). */
int32_t fm_vocab_add(fm_vocab *v, const char *tok, size_t len);
/* The id of a token, or -1. */
int32_t fm_vocab_find(const fm_vocab *v, const char *tok, size_t len);
/* The token of an id, or NULL when out of range. */
const char *fm_vocab_token(const fm_vocab *v, int32_t id);

/* ---- the tokenizer ---- */

/* Which reference the tokenizer follows (see the top of this file). */
typedef enum { FM_TOK_HF = 0, FM_TOK_PYTHON = 1 } fm_tok_reference;

typedef struct {
    fm_tok_reference reference;   /* FM_TOK_HF (default) or FM_TOK_PYTHON */
    int do_lower_case;            /* BertNormalizer's lowercase */
    int strip_accents;            /* 1, 0, or -1: as do_lower_case (tokenizer.json's null) */
    int clean_text;               /* drop controls, whitespace to a space (FM_TOK_HF only; Python always cleans) */
    int tokenize_chinese_chars;   /* spaces around CJK ideographs */
    int split_special_tokens;     /* 1: added tokens' text is ordinary text (Google's behaviour) */
    int max_input_chars_per_word; /* longer words are the unknown token */
    int no_fast_path;             /* tests only: send ASCII through the Unicode path too */
} fm_tokenizer_opts;

/* The defaults of bert-base-uncased: HF, lower case, accents stripped, text
 * cleaned, CJK on, specials kept, 100. */
fm_tokenizer_opts fm_tokenizer_default_opts(void);

/* A token added to the vocabulary (tokenizer.json's added_tokens), matched in
 * the text before WordPiece. */
typedef struct {
    char *content;       /* NUL-terminated UTF-8 */
    size_t len;
    char *norm;          /* normalized: the content after normalization */
    size_t norm_len;
    int32_t id;
    int normalized;      /* matched in the normalized text (else in the raw text) */
    int lstrip, rstrip;  /* remove the whitespace before / after it */
} fm_added_token;

/* What a tokenizer.json can set besides the vocabulary and the options. */
typedef struct {
    const char *unk_token, *cls_token, *sep_token, *pad_token, *mask_token; /* NULL: "[UNK]" etc. */
    const char *continuing_subword_prefix;                                  /* NULL: "##" */
    int nadded;          /* < 0: the default, the special tokens found in the vocabulary */
    const char *const *added_content;
    const int *added_normalized, *added_lstrip, *added_rstrip;
} fm_tokenizer_spec;

#define FM_NUM_SPECIAL 5
typedef struct {
    fm_vocab vocab;
    fm_tokenizer_opts opts;
    int32_t pad_id, unk_id, cls_id, sep_id, mask_id; /* mask_id: the unknown token's id when absent */
    const char *special[FM_NUM_SPECIAL];             /* "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" (or tokenizer.json's) */
    int32_t special_id[FM_NUM_SPECIAL];
    char *special_buf[FM_NUM_SPECIAL];               /* owned copies behind special[] */
    char *prefix;                                    /* continuation prefix, "##" */
    size_t prefix_len;
    fm_added_token *added;                           /* (nadded) */
    int nadded;
    int nraw, nnorm;                                 /* added tokens matched in raw / normalized text */
    unsigned char raw_first[32], norm_first[32];     /* bit sets of their first bytes */
} fm_tokenizer;

/* Take over *vocab (it is left empty) and check it has [PAD], [UNK], [CLS]
 * and [SEP]. FM_ERR naming the missing token otherwise (vocab still taken).
 * The added tokens are the five special tokens the vocabulary has. */
int fm_tokenizer_init(fm_tokenizer *t, fm_vocab *vocab, const fm_tokenizer_opts *opts);
/* The same with the tokens, prefix and added tokens of spec (NULL: the
 * defaults). Every added token must be in the vocabulary already. */
int fm_tokenizer_init_spec(fm_tokenizer *t, fm_vocab *vocab, const fm_tokenizer_opts *opts,
                           const fm_tokenizer_spec *spec);
void fm_tokenizer_free(fm_tokenizer *t);

/* A growable array of token ids. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} fm_ids;
void fm_ids_push(fm_ids *a, int32_t id);
void fm_ids_free(fm_ids *a);

/* Tokenize len bytes of UTF-8 text into word-piece ids appended to *out (no
 * [CLS]/[SEP]). FM_ERR "invalid UTF-8 at byte N" on malformed input (*out
 * then holds what came before). Thread-safe: t is only read. */
int fm_tokenize(const fm_tokenizer *t, const char *text, size_t len, fm_ids *out);

/* Truncate a pair in place, BERT's way, until n_a + n_b <= max_tokens: drop
 * the last token of the longer sequence, of b on a tie. n_b may point to 0. */
void fm_truncate_pair(size_t *n_a, size_t *n_b, size_t max_tokens);

/* One encoded example: input_ids, token_type_ids and attention_mask each
 * hold `len` real entries followed by padding up to the caller's width. */
typedef struct {
    int32_t *input_ids;      /* (width) */
    int32_t *token_type_ids; /* (width) 0 for [CLS] a [SEP], 1 for b [SEP] */
    int32_t *attention_mask; /* (width) 1 real, 0 padding */
    int len;                 /* real tokens */
} fm_encoding;

/* Build [CLS] a [SEP] or [CLS] a [SEP] b [SEP] (b NULL: single sequence)
 * from word-piece ids, truncated longest-first to max_seq_length (<= 0: no
 * truncation), and pad the arrays with [PAD] / 0 / 0 up to pad_to entries
 * (0: no padding). Each array of *enc must hold max(pad_to, the encoded
 * length) entries: max_seq_length is enough when it is > 0. FM_ERR when
 * max_seq_length is too small for the special tokens (2 single, 3 pair) or
 * the encoding is longer than pad_to. */
int fm_encode_ids(const fm_tokenizer *t, const fm_ids *a, const fm_ids *b, int max_seq_length, int pad_to,
                  fm_encoding *enc);
/* The same from texts: tokenize a (and b unless NULL), then fm_encode_ids. */
int fm_encode(const fm_tokenizer *t, const char *a, size_t a_len, const char *b, size_t b_len, int max_seq_length,
              int pad_to, fm_encoding *enc);

#endif
