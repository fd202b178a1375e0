/* fuzz_hfconfig.c: bytes as a model directory's config.json. The reader must
 * either refuse them with a message or return a configuration that passes
 * fm_config_check and survives a round trip: written back as JSON and read
 * again, it gives the same JSON text. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fm.h"
#include "hfconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fm_config c;
    fm_hfextra x;
    memset(&x, 0, sizeof x);
    if (fm_hfconfig_parse((const char *)data, size, "fuzz/config.json", &c, &x) != FM_OK) {
        assert(strncmp(fm_last_error(), "fuzz/config.json", 16) == 0);
        return 0;
    }
    assert(fm_config_check(&c) == FM_OK);
    char *a = fm_hfconfig_dumps(&c, &x);
    fm_config c2;
    fm_hfextra x2;
    memset(&x2, 0, sizeof x2);
    if (fm_hfconfig_parse(a, strlen(a), "again", &c2, &x2) != FM_OK) {
        fprintf(stderr, "its own output refused: %s\n%s\n", fm_last_error(), a);
        abort();
    }
    char *b = fm_hfconfig_dumps(&c2, &x2);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "round trip changed the configuration:\n%s\n---\n%s\n", a, b);
        abort();
    }
    free(a);
    free(b);
    fm_hfextra_free(&x);
    fm_hfextra_free(&x2);
    return 0;
}
