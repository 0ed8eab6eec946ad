/* base/log.h — one line per event on stderr: time, level, component, sentence, key=value.
 *
 *   2026-11-25T10:31:07.412Z INFO  collect  flushed minute 10:30 rows=982
 *
 * Thread-safe (one write(2) per line). The level comes from --log-level / TSI_LOG_LEVEL.
 * Nothing secret is ever passed to these functions. */
#ifndef TSI_BASE_LOG_H
#define TSI_BASE_LOG_H

enum tsi_log_level { TSI_LOG_DEBUG = 0, TSI_LOG_INFO, TSI_LOG_WARN, TSI_LOG_ERROR, TSI_LOG_OFF };

void tsi_log_set_level(enum tsi_log_level level);
enum tsi_log_level tsi_log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns -1 when unknown. */
int tsi_log_parse_level(const char *s);

void tsi_log(enum tsi_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define tsi_debug(comp, ...) tsi_log(TSI_LOG_DEBUG, comp, __VA_ARGS__)
#define tsi_info(comp, ...)  tsi_log(TSI_LOG_INFO, comp, __VA_ARGS__)
#define tsi_warn(comp, ...)  tsi_log(TSI_LOG_WARN, comp, __VA_ARGS__)
#define tsi_err(comp, ...)   tsi_log(TSI_LOG_ERROR, comp, __VA_ARGS__)

/* ISO 8601 UTC with milliseconds of the wall clock, into buf (>= 25 bytes). */
void tsi_log_now_iso(char *buf, int len);

#endif
