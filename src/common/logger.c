/* logger.c - see logger.h. A single write(2) per line keeps lines whole. */
#include "logger.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int logger_min_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void logger_write(int level, const char *subsys, const char *fmt, ...)
{
    if (level < logger_min_level)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), level_names[level & 3], subsys);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

int logger_parse_level(const char *s)
{
    if (strcasecmp(s, "debug") == 0 || strcasecmp(s, "trace") == 0)
        return LOG_LEVEL_DEBUG;
    if (strcasecmp(s, "info") == 0)
        return LOG_LEVEL_INFO;
    if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        return LOG_LEVEL_WARN;
    if (strcasecmp(s, "error") == 0)
        return LOG_LEVEL_ERROR;
    return -1;
}
