/* db/place.c — see place.h */
#include "db/place.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"

void tsi_cluster_resolve(const char *link, char *buf, size_t len)
{
    char real[PATH_MAX];
    if (realpath(link, real))
        snprintf(buf, len, "%s", real);
    else
        snprintf(buf, len, "%s", link);
}

void tsi_cluster_data_link(char *buf, size_t len)
{
    snprintf(buf, len, "%s/pg", tsi_home());
}

void tsi_cluster_data_dir(char *buf, size_t len)
{
    char link[PATH_MAX];
    tsi_cluster_data_link(link, sizeof link);
    tsi_cluster_resolve(link, buf, len);
}

int tsi_cluster_socket_dir(char *buf, size_t len, tsi_error *err)
{
    char d[PATH_MAX], v[PATH_MAX + 16];
    tsi_cluster_data_dir(d, sizeof d);
    snprintf(v, sizeof v, "%s/PG_VERSION", d);
    if (access(v, F_OK) != 0 && geteuid() != 0)
        return tsi_error_set(err, TSI_E_UNAVAILABLE,
                             "the embedded database is not initialised: run `tsi db start`", "%s",
                             d);
    /* sun_path holds 107 bytes; ".s.PGSQL.NNNNN" takes 15 */
    if (strlen(d) > 90)
        snprintf(buf, len, "/tmp");
    else
        snprintf(buf, len, "%s", d);
    return 0;
}

void tsi_ha_dir(char *buf, size_t len)
{
    const char *d = tsi_env("TSI_HA_DIR");
    if (d)
        snprintf(buf, len, "%s", d);
    else
        snprintf(buf, len, "%s/ha", tsi_home());
}

int tsi_ha_formation_read(tsi_ha_formation *f)
{
    char path[PATH_MAX], line[512];
    tsi_ha_dir(path, sizeof path);
    strncat(path, "/formation", sizeof path - strlen(path) - 1);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    memset(f, 0, sizeof *f);
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(line, "monitor_port") == 0)
            f->monitor_port = atoi(v);
        else if (strcmp(line, "node1_port") == 0)
            f->node_port[0] = atoi(v);
        else if (strcmp(line, "node2_port") == 0)
            f->node_port[1] = atoi(v);
        else if (strcmp(line, "socket") == 0)
            snprintf(f->socket_dir, sizeof f->socket_dir, "%s", v);
    }
    fclose(fp);
    for (int i = 0; i < TSI_HA_NODES; i++)
        if (f->node_port[i] <= 0 || f->node_port[i] > 65535)
            return 0;
    return f->socket_dir[0] != '\0';
}
