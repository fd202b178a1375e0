/* unidata_dump.c: print, for every Unicode scalar value, what the linked
 * utf8proc says about it, one line each:
 *
 *   CP;CATEGORY;LOWER;NFD;CCC
 *
 * (hex code points, LOWER and NFD space-separated: the simple lower-case
 * mapping and the full canonical decomposition). tests/tools/gen_unidata.mjs
 * compares these lines with the Unicode version of the JavaScript engine that
 * runs HuggingFace's tokenizers and writes src/unidata.c from the
 * differences. Not part of finemask itself. */
#include <stdio.h>

#include <utf8proc.h>

int main(void) {
    printf("# utf8proc %s, Unicode %s\n", utf8proc_version(), utf8proc_unicode_version());
    for (utf8proc_int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        printf("%X;%s;%X;", (unsigned)cp, utf8proc_category_string(cp), (unsigned)utf8proc_tolower(cp));
        utf8proc_int32_t d[32];
        int last = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char(cp, d, 32, UTF8PROC_DECOMPOSE, &last);
        for (utf8proc_ssize_t i = 0; i < n; i++) printf(i ? " %X" : "%X", (unsigned)d[i]);
        printf(";%d\n", utf8proc_get_property(cp)->combining_class);
    }
    return ferror(stdout) ? 1 : 0;
}
