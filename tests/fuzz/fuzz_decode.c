/* tests/fuzz/fuzz_decode.c — libFuzzer target for every JSON decoder of VCC messages:
 * one message, a stream frame, MapData and SPaT, on the same bytes. Built by
 * `make fuzz` (scripts/fuzz: clang -fsanitize=fuzzer,address,undefined). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/json.h"
#include "vcc/decode.h"

static void on_msg(void *ud, int index, const tsi_msg *m, int rc, const tsi_error *err)
{
    size_t *n = ud;
    (void)index;
    (void)err;
    if (m && rc == 0)
        *n += (size_t)(m->lat > 0) + strlen(m->location_name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *js = (const char *)data;
    tsi_msg m;
    tsi_error err;
    tsi_msg_decode(js, size, &m, &err);

    tsi_decoder dec;
    tsi_decoder_init(&dec);
    size_t n = 0;
    tsi_frame_decode(&dec, js, size, on_msg, &n, &err);
    tsi_decoder_free(&dec);

    tsi_mapdata md;
    if (tsi_mapdata_decode(js, size, &md, &err) == 0) {
        for (int i = 0; i < md.n; i++)
            for (int l = 0; l < md.items[i].nlanes; l++)
                n += (size_t)md.items[i].lanes[l].nnodes;
    }
    tsi_mapdata_free(&md);

    tsi_spat sp;
    if (tsi_spat_decode(js, size, &sp, &err) == 0)
        n += (size_t)sp.n;
    tsi_spat_free(&sp);

    /* the accessor API on whatever parses: walk everything, read every string */
    tsi_json d;
    if (tsi_json_parse_alloc(&d, js, size, 100000, &err) > 0) {
        char buf[256];
        for (int i = 0; i < d.ntok; i++) {
            double v;
            int64_t iv;
            tsi_json_str(&d, i, buf, sizeof buf);
            tsi_json_num(&d, i, &v);
            tsi_json_int64(&d, i, &iv);
            n += (size_t)tsi_json_skip(&d, i);
        }
        tsi_json_free(&d);
    }
    return n == (size_t)-1;
}
