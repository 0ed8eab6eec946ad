/* base/fs.h — directories made and made durable: the two file-system steps every writer
 * of files shares (the Parquet publish path in archive/pqfile.c, the collector's spool in
 * db/spool.c, the tools). */
#ifndef TSI_BASE_FS_H
#define TSI_BASE_FS_H

#include "base/error.h"

/* mkdir -p (mode 0755). */
int tsi_mkdirs(const char *path, tsi_error *err);

/* fsync of a directory (so a rename in it is durable). */
int tsi_fsync_dir(const char *dir, tsi_error *err);

#endif
