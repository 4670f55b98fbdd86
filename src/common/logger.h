/* logger.h - one line per event: time, level, subsystem, message; to stderr. */
#ifndef RUNNEL_LOGGER_H
#define RUNNEL_LOGGER_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Lines below this level are dropped. Set once at start-up. */
extern int logger_min_level;

void logger_write(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses "debug", "info", "warn"/"warning", "error" (case-insensitive); -1 if unknown. */
int logger_parse_level(const char *s);

#define LOG_DEBUG(sub, ...) do { if (logger_min_level <= LOG_LEVEL_DEBUG) logger_write(LOG_LEVEL_DEBUG, sub, __VA_ARGS__); } while (0)
#define LOG_INFO(sub, ...)  do { if (logger_min_level <= LOG_LEVEL_INFO) logger_write(LOG_LEVEL_INFO, sub, __VA_ARGS__); } while (0)
#define LOG_WARN(sub, ...)  logger_write(LOG_LEVEL_WARN, sub, __VA_ARGS__)
#define LOG_ERROR(sub, ...) logger_write(LOG_LEVEL_ERROR, sub, __VA_ARGS__)

#endif
