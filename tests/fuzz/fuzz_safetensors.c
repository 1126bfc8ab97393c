/* fuzz_safetensors.c - the safetensors header parser on arbitrary bytes:
 * whatever the input, st_parse returns a code, never crashes, reads out of
 * bounds or leaks; on AX_OK every tensor lies inside the data section. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy into an exact-size buffer so ASan catches any overread. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct st_header h;
    char err[AX_ERRLEN];
    if (st_parse(buf, size, "fuzz", &h, err) == AX_OK) {
        for (size_t i = 0; i < h.n; i++) {
            if (h.t[i].end > size - h.data_start || h.t[i].begin > h.t[i].end)
                abort();
            if (st_find(&h, h.t[i].name) != &h.t[i])
                abort();
        }
        st_header_free(&h);
    }
    free(buf);
    return 0;
}
