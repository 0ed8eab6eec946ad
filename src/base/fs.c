/* base/fs.c — see fs.h */
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tsi_mkdirs(const char *path, tsi_error *err)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof p)
        return tsi_error_set(err, TSI_E_INVALID, "directory path is empty or too long", "%.200s",
                             path);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return tsi_error_set(err, TSI_E_IO, "cannot create directory", "%s: %s", p,
                                     strerror(errno));
            p[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return tsi_error_set(err, TSI_E_IO, "not a directory", "%s", path);
    return 0;
}

int tsi_fsync_dir(const char *dir, tsi_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot open directory", "%s: %s", dir,
                             strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot fsync directory", "%s: %s", dir, strerror(e));
    return 0;
}
