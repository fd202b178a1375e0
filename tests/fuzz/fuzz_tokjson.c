/* fuzz_tokjson.c: bytes as tokenizer.json, then as tokenizer_config.json.
 * Checked: the parser accepts or refuses with a message, never crashes or
 * leaks; an accepted tokenizer has its special tokens in its vocabulary and
 * tokenizes a fixed text into ids of that vocabulary. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "fm.h"
#include "tokenizer.h"
#include "tokjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fm_tokenizer t;
    if (fm_tokenizer_json_parse(&t, "fuzz.json", (const char *)data, size, NULL) == FM_OK) {
        assert(t.unk_id >= 0 && t.unk_id < t.vocab.n && t.cls_id >= 0 && t.cls_id < t.vocab.n);
        static const char text[] = "Hello, [CLS] W\xc3\xb6rld \xce\xa3 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 x";
        fm_ids ids = {0};
        assert(fm_tokenize(&t, text, sizeof text - 1, &ids) == FM_OK);
        for (size_t i = 0; i < ids.n; i++) assert(ids.ids[i] >= 0 && ids.ids[i] < t.vocab.n);
        fm_ids_free(&ids);
        fm_tokenizer_free(&t);
    } else {
        assert(*fm_last_error());
    }
    fm_tokenizer_opts o = fm_tokenizer_default_opts();
    if (fm_tokenizer_config_parse(&o, "fuzz.json", (const char *)data, size) != FM_OK) assert(*fm_last_error());
    return 0;
}
