/* core/messages.c — see messages.h */
#include "core/messages.h"

#include <string.h>

#include "base/arena.h"

bool tsi_msg_is_vru_person(const tsi_msg *m)
{
    return m->type == TSI_MSG_PSM && m->basic_type != TSI_PSM_ANIMAL;
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
