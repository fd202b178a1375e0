/* tokenizer.h: BERT's WordPiece tokenizer, token for token the same as
 * HuggingFace's BertTokenizer (the Python one, which follows Google's
 * tokenization.py), and the classifier input encoding of run_classifier:
 * [CLS] a [SEP] (b [SEP]), token types, longest-first truncation, padding.
 *
 * What "the same" means, stage by stage (HF BertTokenizer, do_lower_case as
 * configured, tokenize_chinese_chars on, strip_accents following the case):
 *
 *  1. Special tokens: the exact, case-sensitive text "[CLS]", "[SEP]",
 *     "[UNK]", "[PAD]" or "[MASK]" anywhere in the input is that token (HF's
 *     default, split_special_tokens=False); the text between them is
 *     tokenized on its own. "[cls]" is ordinary text ("[", "cl", "##s", "]").
 *     Set split_special_tokens for Google's original behaviour (no special
 *     treatment at all).
 *  2. Lower-casing (uncased): per character, Python's str.lower() mapping
 *     (so no final-sigma rule: "Σ" is always "σ"; "İ" is "i" + U+0307).
 *  3. Cleaning: U+0000, U+FFFD and every character of category C* (Cc, Cf,
 *     Co, Cn; HF's _is_control) are dropped, except \t \n \r, which like
 *     category Zs are whitespace and become a space.
 *  4. CJK: the reference's ideograph ranges (4E00-9FFF, 3400-4DBF,
 *     20000-2A6DF, 2A700-2B73F, 2B740-2B81F, 2B820-2CEAF, F900-FAFF,
 *     2F800-2FA1F) get a space on each side.
 *  5. NFC (HF since 2023), then split on whitespace (a space, and U+2028 /
 *     U+2029, which Python's str.split() also splits on).
 *  6. Each word that is exactly a special token stays whole; otherwise
 *     (uncased) NFD and drop category Mn (accent stripping), then split
 *     punctuation off as single-character words: ASCII 33-47, 58-64, 91-96,
 *     123-126 and every category P*.
 *  7. WordPiece: greedy longest match first with "##" continuations; a word
 *     of more than max_input_chars_per_word (100) characters, or one that
 *     cannot be covered by vocabulary pieces, is a single [UNK].
 *
 * Unicode data is utf8proc's (Unicode 15); CPython 3.11 has Unicode 14, so a
 * character first assigned in Unicode 15 is dropped as category Cn by the
 * Python reference and kept (usually as [UNK]) here.
 *
 * HF's fast (Rust/JS) BertTokenizerFast gives the same ids on all the GLUE
 * text we have; it differs from the Python tokenizer followed here only on
 * rare characters: it keeps unassigned/private-use characters, does no NFC
 * (CJK compatibility ideographs), and its JS port lower-cases a final Σ to
 * ς. */
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

typedef struct {
    int do_lower_case;            /* lower-case and strip accents (uncased models) */
    int tokenize_chinese_chars;   /* spaces around CJK ideographs */
    int split_special_tokens;     /* 1: "[CLS]" in text is ordinary text (Google's behaviour) */
    int max_input_chars_per_word; /* longer words are [UNK] */
    int no_fast_path;             /* tests only: send ASCII through the Unicode path too */
} fm_tokenizer_opts;

/* The defaults of bert-base-uncased: lower case, CJK on, specials kept, 100. */
fm_tokenizer_opts fm_tokenizer_default_opts(void);

#define FM_NUM_SPECIAL 5
typedef struct {
    fm_vocab vocab;
    fm_tokenizer_opts opts;
    int32_t pad_id, unk_id, cls_id, sep_id, mask_id; /* mask_id: [UNK]'s id when absent */
    const char *special[FM_NUM_SPECIAL];             /* "[PAD]", "[UNK]", ... */
    int32_t special_id[FM_NUM_SPECIAL];
} fm_tokenizer;

/* Take over *vocab (it is left empty) and check it has [PAD], [UNK], [CLS]
 * and [SEP]. FM_ERR naming the missing token otherwise (vocab still taken). */
int fm_tokenizer_init(fm_tokenizer *t, fm_vocab *vocab, const fm_tokenizer_opts *opts);
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
