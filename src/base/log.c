/* base/log.c — see log.h */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum tsi_log_level current = TSI_LOG_INFO;

void tsi_log_set_level(enum tsi_log_level level)
{
    current = level;
}

enum tsi_log_level tsi_log_get_level(void)
{
    return current;
}

int tsi_log_parse_level(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

void tsi_log_now_iso(char *buf, int len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, (size_t)len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void tsi_log(enum tsi_log_level level, const char *component, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level < current || level >= TSI_LOG_OFF)
        return;
    char line[2048];
    char now[32];
    tsi_log_now_iso(now, sizeof now);
    int n = snprintf(line, sizeof line, "%s %s %-8s ", now, tags[level], component);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < (int)sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
