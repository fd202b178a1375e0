/* unicode.h: the character properties the tokenizer asks about, as Unicode
 * fm_unidata_unicode_version defines them: utf8proc's answers, corrected by
 * the generated table of unidata.c where the two versions differ. */
#ifndef FM_UNICODE_H
#define FM_UNICODE_H

#include <stdint.h>

#include <utf8proc.h>

/* The general category of cp. */
utf8proc_category_t fm_uc_category(int32_t cp);
/* The canonical combining class of cp (0 for starters). */
int fm_uc_ccc(int32_t cp);
/* The full lower-case mapping of cp without context (U+0130 is "i" U+0307)
 * into out; returns its length (1 to 3). */
int fm_uc_lower(int32_t cp, int32_t out[3]);
/* The full canonical decomposition of cp (Hangul included) into out (cap
 * entries); returns its length, 1 when cp does not decompose. */
int fm_uc_nfd(int32_t cp, int32_t *out, int cap);
/* The Cased and Case_Ignorable properties (for the final-sigma rule). */
int fm_uc_cased(int32_t cp);
int fm_uc_case_ignorable(int32_t cp);

#endif
