/* core/messages.c — see messages.h */
#include "core/messages.h"

#include <string.h>

#include "base/arena.h"

bool tsi_msg_is_vru_person(const tsi_msg *m)
{
    return m->type == TSI_MSG_PSM && m->basic_type != TSI_PSM_ANIMAL;
}

const char *tsi_form_name(int bit)
{
    static const char *const names[TSI_FORM__COUNT] = {
        "integer",        "bitstring",       "bool_object",    "name",
        "lanetype_nulls", "lanetype_onekey", "lanetype_string"};
    return bit >= 0 && bit < TSI_FORM__COUNT ? names[bit] : "?";
}

const char *tsi_bad_field_name(int bit)
{
    static const char *const names[TSI_BAD__COUNT] = {
        "brakes.wheelBrakes", "brakes.traction",  "brakes.abs",  "brakes.scs",
        "brakes.brakeBoost",  "brakes.auxBrakes", "transmission"};
    return bit >= 0 && bit < TSI_BAD__COUNT ? names[bit] : "?";
}

void tsi_mapdata_free(tsi_mapdata *m)
{
    if (m == NULL)
        return;
    tsi_arena_free(m->arena);
    memset(m, 0, sizeof *m);
}

void tsi_spat_free(tsi_spat *s)
{
    if (s == NULL)
        return;
    tsi_arena_free(s->arena);
    memset(s, 0, sizeof *s);
}
