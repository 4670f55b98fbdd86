/*
 * leader_epoch.c - a partition's leader epoch cache and its leader-epoch-checkpoint file.
 *
 * File layout (Kafka's LeaderEpochCheckpointFile; ASCII):
 *   0\n                        version
 *   <N>\n                      entry count
 *   <epoch> <startOffset>\n    N lines; written with one space, read with any run of blanks
 * Reading follows Kafka's checkpoint reader: an empty file, or one holding only the version
 * line, is an empty cache; the last line may lack its '\n' and a "\r\n" end is accepted; a wrong
 * version, a bad number, a line without exactly two fields, a count that differs from the number
 * of lines, or a negative epoch or offset makes the file malformed (Kafka fails the log load on
 * the last of these; here the cache starts empty, and the log's recovery truncates to match).
 *
 * In memory the entries sit in one array ordered by epoch. Every change keeps the invariant that
 * epochs strictly increase and start offsets never decrease, so lookups are binary searches and
 * removals only ever cut a prefix or a suffix.
 */
#include "storage/leader_epoch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/logger.h"

/* Far beyond any real file (a line is at most 32 bytes); stops a stray huge file being slurped. */
#define LEC_MAX_FILE_BYTES (64u * 1024 * 1024)

typedef struct lec_entry {
    int32_t epoch;
    int64_t start_offset;
} lec_entry_t;

struct leader_epoch_cache {
    char *path; /* <dir>/leader-epoch-checkpoint */
    lec_entry_t *e;
    size_t n, cap;
};

/* Room for one more entry. false when out of memory (the cache is unchanged). */
static bool reserve_one(leader_epoch_cache_t *c)
{
    if (c->n < c->cap)
        return true;
    size_t cap = c->cap ? c->cap * 2 : 8;
    lec_entry_t *e = realloc(c->e, cap * sizeof(*e));
    if (!e)
        return false;
    c->e = e;
    c->cap = cap;
    return true;
}

/* lec_assign's work: 1 when the cache changed, 0 when not, -1 when out of memory. */
static int assign(leader_epoch_cache_t *c, int32_t epoch, int64_t start_offset)
{
    if (epoch < 0 || start_offset < 0)
        return 0;
    if (c->n > 0 && c->e[c->n - 1].epoch == epoch && start_offset >= c->e[c->n - 1].start_offset)
        return 0;
    /* Entries that would break monotonicity next to the new one form a suffix. */
    size_t keep = c->n;
    while (keep > 0 &&
           (c->e[keep - 1].epoch >= epoch || c->e[keep - 1].start_offset >= start_offset))
        keep--;
    if (keep == c->n && !reserve_one(c))
        return -1;
    size_t removed = c->n - keep;
    /* Replacing one entry that starts at the same offset is the expected case of a new leader
     * that had not written yet; anything more means the log had diverged. */
    if (removed > 1 || (removed == 1 && c->e[keep].start_offset != start_offset))
        LOG_WARN("storage", "%s: epoch %" PRId32 " at offset %" PRId64 " removed %zu conflicting "
                 "entries, the first epoch %" PRId32 " at offset %" PRId64, c->path, epoch,
                 start_offset, removed, c->e[keep].epoch, c->e[keep].start_offset);
    c->e[keep].epoch = epoch;
    c->e[keep].start_offset = start_offset;
    c->n = keep + 1;
    return 1;
}

bool lec_assign(leader_epoch_cache_t *c, int32_t epoch, int64_t start_offset)
{
    int rc = assign(c, epoch, start_offset);
    if (rc < 0)
        LOG_ERROR("storage", "%s: out of memory recording epoch %" PRId32 " at offset %" PRId64,
                  c->path, epoch, start_offset);
    return rc > 0;
}

/* ------------------------------------------------------------------------------------ loading */

/* Decimal integer spanning exactly [p, end), optional sign, within [lo, hi]. */
static bool parse_num(const char *p, const char *end, int64_t lo, int64_t hi, int64_t *out)
{
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
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
    int64_t s = neg ? (int64_t)(0 - v) : (int64_t)v;
    if (s < lo || s > hi)
        return false;
    *out = s;
    return true;
}

/* Next line of [*p, end) as [*ls, *le), without its "\n" or "\r\n"; the last line may be
 * unterminated. false when nothing is left. */
static bool next_line(const char **p, const char *end, const char **ls, const char **le)
{
    if (*p >= end)
        return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *ls = *p;
    *le = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    if (*le > *ls && (*le)[-1] == '\r')
        (*le)--;
    return true;
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

/* "<epoch><blanks><offset>[blanks]" -> the two numbers. */
static bool parse_entry(const char *ls, const char *le, int64_t *epoch, int64_t *off)
{
    const char *a = ls, *ae = a;
    while (ae < le && !is_blank(*ae))
        ae++;
    const char *b = ae;
    while (b < le && is_blank(*b))
        b++;
    const char *be = b;
    while (be < le && !is_blank(*be))
        be++;
    for (const char *q = be; q < le; q++) {
        if (!is_blank(*q))
            return false; /* a third field */
    }
    return b > ae && parse_num(a, ae, 0, INT32_MAX, epoch) && parse_num(b, be, 0, INT64_MAX, off);
}

/* Applies the file's entries to the (empty) cache. 0, -1 when malformed (*why says what; the
 * cache may hold a prefix of the entries, which the caller clears), or -2 when out of memory. */
static int load(leader_epoch_cache_t *c, const char *data, size_t size, const char **why)
{
    const char *p = data, *end = data + size, *ls, *le;
    int64_t version, count, epoch, off;
    if (!next_line(&p, end, &ls, &le))
        return 0;
    if (!parse_num(ls, le, INT32_MIN, INT32_MAX, &version) || version != 0) {
        *why = "bad version line";
        return -1;
    }
    if (!next_line(&p, end, &ls, &le))
        return 0;
    if (!parse_num(ls, le, 0, INT32_MAX, &count)) {
        *why = "bad entry count";
        return -1;
    }
    int64_t lines = 0;
    while (next_line(&p, end, &ls, &le)) {
        if (!parse_entry(ls, le, &epoch, &off)) {
            *why = "bad entry line";
            return -1;
        }
        lines++;
        if (assign(c, (int32_t)epoch, off) < 0)
            return -2;
    }
    if (lines != count) {
        *why = "entry count does not match the lines";
        return -1;
    }
    return 0;
}

leader_epoch_cache_t *lec_open(const char *dir)
{
    leader_epoch_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    size_t len = strlen(dir) + 1 + sizeof(LEC_FILE_NAME);
    c->path = malloc(len);
    if (!c->path) {
        free(c);
        return NULL;
    }
    snprintf(c->path, len, "%s/%s", dir, LEC_FILE_NAME);

    buf_t b;
    buf_init(&b);
    if (fs_read_file(c->path, &b, LEC_MAX_FILE_BYTES) != 0) {
        int e = errno;
        buf_free(&b);
        if (e == ENOMEM) {
            lec_free(c);
            return NULL;
        }
        if (e != ENOENT)
            LOG_WARN("storage", "%s: unreadable (%s); starting with no leader epochs", c->path,
                     strerror(e));
        return c;
    }
    const char *why = NULL;
    int rc = load(c, (const char *)b.data, b.len, &why);
    buf_free(&b);
    if (rc == -2) {
        lec_free(c);
        return NULL;
    }
    if (rc == -1) {
        LOG_WARN("storage", "%s: malformed (%s); starting with no leader epochs", c->path, why);
        c->n = 0;
    }
    return c;
}

void lec_free(leader_epoch_cache_t *c)
{
    if (!c)
        return;
    free(c->e);
    free(c->path);
    free(c);
}

/* ------------------------------------------------------------------------------------ queries */

int32_t lec_latest_epoch(const leader_epoch_cache_t *c)
{
    return c->n ? c->e[c->n - 1].epoch : LEC_UNDEFINED_EPOCH;
}

int lec_count(const leader_epoch_cache_t *c) { return (int)c->n; }

bool lec_entry(const leader_epoch_cache_t *c, int i, int32_t *epoch, int64_t *start_offset)
{
    if (i < 0 || (size_t)i >= c->n)
        return false;
    *epoch = c->e[i].epoch;
    *start_offset = c->e[i].start_offset;
    return true;
}

/* Index of the first entry whose epoch is > epoch (c->n when none). */
static size_t first_above(const leader_epoch_cache_t *c, int32_t epoch)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->e[mid].epoch <= epoch)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void lec_end_offset_for(const leader_epoch_cache_t *c, int32_t requested_epoch,
                        int64_t log_end_offset, int32_t *epoch_out, int64_t *end_offset_out)
{
    *epoch_out = LEC_UNDEFINED_EPOCH;
    *end_offset_out = LEC_UNDEFINED_OFFSET;
    if (requested_epoch == LEC_UNDEFINED_EPOCH)
        return; /* a follower that knows no epoch yet */
    if (c->n && c->e[c->n - 1].epoch == requested_epoch) {
        /* The epoch still being written: it ends where the log does. */
        *epoch_out = requested_epoch;
        *end_offset_out = log_end_offset;
        return;
    }
    size_t hi = first_above(c, requested_epoch);
    if (hi == c->n)
        return; /* newer than anything known (or nothing known) */
    /* Older than the first entry: its data is gone from this log, so point the follower at the
     * first offset we still have an epoch for, keeping its epoch (as Kafka does). */
    *epoch_out = hi == 0 ? requested_epoch : c->e[hi - 1].epoch;
    *end_offset_out = c->e[hi].start_offset;
}

/* ---------------------------------------------------------------------------------- truncation */

bool lec_truncate_from_end(leader_epoch_cache_t *c, int64_t end_offset)
{
    if (end_offset < 0 || c->n == 0 || c->e[c->n - 1].start_offset < end_offset)
        return false;
    while (c->n > 0 && c->e[c->n - 1].start_offset >= end_offset)
        c->n--;
    return true;
}

bool lec_truncate_from_start(leader_epoch_cache_t *c, int64_t start_offset)
{
    size_t k = 0; /* entries starting at or below start_offset */
    while (k < c->n && c->e[k].start_offset <= start_offset)
        k++;
    if (k == 0 || (k == 1 && c->e[0].start_offset == start_offset))
        return false;
    /* The last of them covers start_offset: it stays, moved up to begin there. */
    memmove(c->e, c->e + (k - 1), (c->n - (k - 1)) * sizeof(*c->e));
    c->n -= k - 1;
    c->e[0].start_offset = start_offset;
    return true;
}

/* ------------------------------------------------------------------------------------- writing */

int lec_flush(const leader_epoch_cache_t *c)
{
    buf_t b;
    buf_init(&b);
    char line[64];
    int len = snprintf(line, sizeof(line), "0\n%zu\n", c->n);
    buf_put(&b, line, (size_t)len);
    for (size_t i = 0; i < c->n; i++) {
        len = snprintf(line, sizeof(line), "%" PRId32 " %" PRId64 "\n", c->e[i].epoch,
                       c->e[i].start_offset);
        buf_put(&b, line, (size_t)len);
    }
    if (b.oom) {
        buf_free(&b);
        errno = ENOMEM;
        return -1;
    }
    int rc = fs_write_replace(c->path, b.data, b.len);
    int e = errno;
    buf_free(&b);
    errno = e;
    return rc;
}
