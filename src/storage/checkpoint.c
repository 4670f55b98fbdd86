/*
 * checkpoint.c - Kafka's offset checkpoint files. Byte layout (ASCII, '\n' line ends):
 *   0\n                                   version
 *   <count>\n                             number of entry lines
 *   <topic> <partition> <offset>\n        count times, single spaces
 * Written to `<path>.tmp`, fsynced, renamed over `<path>`, then the directory fsynced, so a
 * crash leaves either the old or the new file whole.
 */
#include "storage/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/logger.h"

#define CHECKPOINT_MAX_BYTES (64 * 1024 * 1024)

static bool topic_ok(const char *t)
{
    size_t n = strnlen(t, sizeof(((checkpoint_entry_t *)0)->topic));
    if (n == 0 || n >= sizeof(((checkpoint_entry_t *)0)->topic))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    return true;
}

int checkpoint_write(const char *path, const checkpoint_entry_t *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!topic_ok(entries[i].topic))
            return LOG_ERR_INVALID;
    }
    buf_t b;
    buf_init(&b);
    char line[320];
    int len = snprintf(line, sizeof(line), "0\n%zu\n", n);
    buf_put(&b, line, (size_t)len);
    for (size_t i = 0; i < n; i++) {
        len = snprintf(line, sizeof(line), "%s %" PRId32 " %" PRId64 "\n", entries[i].topic,
                       entries[i].partition, entries[i].offset);
        buf_put(&b, line, (size_t)len);
    }
    if (b.oom) {
        buf_free(&b);
        return LOG_ERR_IO;
    }
    int rc = fs_write_atomic(path, b.data, b.len);
    int e = errno;
    buf_free(&b);
    if (rc != 0) {
        LOG_ERROR("storage", "checkpoint %s: %s", path, strerror(e));
        return LOG_ERR_IO;
    }
    return LOG_OK;
}

/* Parses a decimal int64 spanning exactly [p, end); false on anything else or overflow. */
static bool parse_i64(const char *p, const char *end, int64_t *out)
{
    bool neg = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p == end)
        return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* Next '\n'-terminated line of [*p, end) as [*ls, *le); false when no complete line is left. */
static bool next_line(const char **p, const char *end, const char **ls, const char **le)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return false;
    *ls = *p;
    *le = nl;
    *p = nl + 1;
    return true;
}

static int parse(const char *data, size_t size, checkpoint_entry_t **entries, size_t *n_out)
{
    const char *p = data, *end = data + size, *ls, *le;
    int64_t version, count;
    if (!next_line(&p, end, &ls, &le) || !parse_i64(ls, le, &version) || version != 0)
        return LOG_ERR_CORRUPT;
    /* Every entry needs at least 6 bytes ("t 0 0\n"), which bounds the allocation. */
    if (!next_line(&p, end, &ls, &le) || !parse_i64(ls, le, &count) || count < 0 ||
        count > (int64_t)(size / 6))
        return LOG_ERR_CORRUPT;
    checkpoint_entry_t *es = count ? calloc((size_t)count, sizeof(*es)) : NULL;
    if (count && !es)
        return LOG_ERR_IO;
    for (int64_t i = 0; i < count; i++) {
        const char *s1, *s2;
        int64_t part, off;
        if (!next_line(&p, end, &ls, &le) || !(s1 = memchr(ls, ' ', (size_t)(le - ls))) ||
            !(s2 = memchr(s1 + 1, ' ', (size_t)(le - s1 - 1))) ||
            (size_t)(s1 - ls) >= sizeof(es[i].topic) || s1 == ls ||
            !parse_i64(s1 + 1, s2, &part) || part < 0 || part > INT32_MAX ||
            !parse_i64(s2 + 1, le, &off)) {
            free(es);
            return LOG_ERR_CORRUPT;
        }
        memcpy(es[i].topic, ls, (size_t)(s1 - ls));
        es[i].topic[s1 - ls] = '\0';
        if (!topic_ok(es[i].topic)) {
            free(es);
            return LOG_ERR_CORRUPT;
        }
        es[i].partition = (int32_t)part;
        es[i].offset = off;
    }
    if (p != end) { /* more lines than the count says, or a torn last line */
        free(es);
        return LOG_ERR_CORRUPT;
    }
    *entries = es;
    *n_out = (size_t)count;
    return LOG_OK;
}

int checkpoint_read(const char *path, checkpoint_entry_t **entries, size_t *n)
{
    *entries = NULL;
    *n = 0;
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd == -1 && errno == EINTR);
    if (fd == -1) {
        if (errno == ENOENT)
            return LOG_OK;
        LOG_ERROR("storage", "checkpoint %s: %s", path, strerror(errno));
        return LOG_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) == -1) {
        (void)close(fd);
        return LOG_ERR_IO;
    }
    if (st.st_size > CHECKPOINT_MAX_BYTES) {
        (void)close(fd);
        return LOG_ERR_CORRUPT;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *data = malloc(cap);
    if (!data) {
        (void)close(fd);
        return LOG_ERR_IO;
    }
    for (;;) {
        if (len == cap) { /* grew since fstat: read no further than the cap */
            free(data);
            (void)close(fd);
            return LOG_ERR_CORRUPT;
        }
        ssize_t r = read(fd, data + len, cap - len);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            free(data);
            (void)close(fd);
            return LOG_ERR_IO;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    (void)close(fd);
    int rc = parse(data, len, entries, n);
    free(data);
    return rc;
}
