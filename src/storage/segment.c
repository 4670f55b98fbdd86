/*
 * segment.c - one log segment.
 *
 * <base>.log, where <base> is the segment's first offset as 20 zero-padded digits, holds Kafka
 * RecordBatches (magic 2) back to back, byte for byte as on the wire, with baseOffset and
 * partitionLeaderEpoch assigned by the broker (the CRC does not cover them):
 *    0 baseOffset int64     8 batchLength int32   12 partitionLeaderEpoch int32   16 magic int8
 *   17 crc uint32          21 attributes int16    23 lastOffsetDelta int32
 *   27 baseTimestamp int64 35 maxTimestamp int64  43 producerId int64  51 producerEpoch int16
 *   53 baseSequence int32  57 recordsCount int32  61 records...
 * A batch occupies 12 + batchLength bytes; offsets strictly increase from batch to batch and
 * every offset of the segment is >= <base> and < <base> + 2^31 (index entries hold them relative
 * to <base> in an int32), and the file stays below 2 GiB (positions are int32 too).
 * The offset and time indexes beside it are described in index.c.
 *
 * Recovery (segment_recover): read the file from position 0 batch by batch; a batch is accepted
 * when its header fits, batchLength >= 49 and the batch ends inside the file, magic is 2,
 * lastOffsetDelta >= 0, its baseOffset is not below the previous batch's end, and the CRC-32C of
 * bytes 21..end matches. The file is cut at the first batch that is not accepted (a torn write
 * after a crash) and both indexes are rebuilt from the accepted batches.
 */
#include "storage/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/logger.h"
#include "protocol/record_batch.h"
#include "storage/index.h"

#define SEG_READ_WINDOW 8192      /* header scans on the read path (stack buffer) */
#define SEG_RECOVER_WINDOW 65536  /* recovery reads and checksums in chunks of this size */
#define SEG_MIN_BATCH_LENGTH (RB_HEADER_SIZE - RB_LOG_OVERHEAD)
#define SEG_PENDING 64            /* index entries gathered before one pwrite */

/* ---------------------------------------------------------------- small I/O helpers */

static int pwrite_all(int fd, const uint8_t *p, size_t n, int64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return LOG_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return LOG_OK;
}

/* Reads up to n bytes; returns the count (short only at end of file) or -1. */
static ssize_t pread_upto(int fd, uint8_t *p, size_t n, int64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, (off_t)(off + (int64_t)got));
        if (r == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int file_truncate(int fd, int64_t size)
{
    while (ftruncate(fd, (off_t)size) == -1) {
        if (errno != EINTR)
            return LOG_ERR_IO;
    }
    return LOG_OK;
}

static int file_datasync(int fd)
{
    if (fd < 0)
        return LOG_OK;
    while (fdatasync(fd) == -1) {
        if (errno != EINTR)
            return LOG_ERR_IO;
    }
    return LOG_OK;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        /* Linux releases the descriptor even when close reports EINTR: never retry. */
        (void)close(*fd);
        *fd = -1;
    }
}

/* ---------------------------------------------------------------- names */

int segment_path(char *out, size_t cap, const char *dir, int64_t base, const char *ext)
{
    int n = snprintf(out, cap, "%s/%020" PRId64 "%s", dir, base, ext);
    if (n < 0 || (size_t)n >= cap)
        return LOG_ERR_INVALID;
    return LOG_OK;
}

bool segment_parse_name(const char *name, int64_t *base, const char **ext)
{
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
        if (v > (uint64_t)INT64_MAX)
            return false;
    }
    *base = (int64_t)v;
    *ext = name + 20;
    return true;
}

static int open_file(const char *dir, int64_t base, const char *ext, int flags, int *fd)
{
    char path[4096];
    if (segment_path(path, sizeof(path), dir, base, ext) != LOG_OK)
        return LOG_ERR_INVALID;
    int f;
    do {
        f = open(path, flags | O_CLOEXEC, 0644);
    } while (f == -1 && errno == EINTR);
    if (f == -1)
        return LOG_ERR_IO; /* errno kept for the caller */
    *fd = f;
    return LOG_OK;
}

/* ---------------------------------------------------------------- lifecycle */

void segment_init(segment_t *s, int64_t base)
{
    memset(s, 0, sizeof(*s));
    s->base_offset = base;
    s->next_offset = base;
    s->max_timestamp = -1;
    s->max_ts_offset = -1;
    s->first_append_ms = -1;
    s->tidx_last_ts = -1;
    s->idx_last_rel = s->idx_last_pos = -1;
    s->log_fd = s->idx_fd = s->tidx_fd = -1;
}

void segment_close_files(segment_t *s)
{
    close_fd(&s->log_fd);
    close_fd(&s->idx_fd);
    close_fd(&s->tidx_fd);
}

/* Opens the three files; a missing one is logged unless quiet_missing (the caller rebuilds). */
static int open_all(const char *dir, segment_t *s, int log_flags, int idx_flags, bool quiet_missing)
{
    static const char *const exts[3] = {".log", ".index", ".timeindex"};
    int *fds[3] = {&s->log_fd, &s->idx_fd, &s->tidx_fd};
    for (int i = 0; i < 3; i++) {
        int flags = i == 0 ? log_flags : idx_flags;
        if (open_file(dir, s->base_offset, exts[i], flags, fds[i]) != LOG_OK) {
            int e = errno;
            if (!(quiet_missing && e == ENOENT))
                LOG_ERROR("storage", "%s: open %020" PRId64 "%s: %s", dir, s->base_offset,
                          exts[i], strerror(e));
            segment_close_files(s);
            errno = e;
            return LOG_ERR_IO;
        }
    }
    return LOG_OK;
}

int segment_create(const char *dir, int64_t base, segment_t *s)
{
    segment_init(s, base);
    return open_all(dir, s, O_RDWR | O_CREAT | O_TRUNC, O_RDWR | O_CREAT | O_TRUNC, false);
}

int segment_create_suffixed(const char *dir, int64_t base, const char *suffix, segment_t *s)
{
    segment_init(s, base);
    static const char *const exts[3] = {".log", ".index", ".timeindex"};
    int *fds[3] = {&s->log_fd, &s->idx_fd, &s->tidx_fd};
    for (int i = 0; i < 3; i++) {
        char ext[64];
        int n = snprintf(ext, sizeof(ext), "%s%s", exts[i], suffix);
        if (n < 0 || (size_t)n >= sizeof(ext) ||
            open_file(dir, base, ext, O_RDWR | O_CREAT | O_TRUNC, fds[i]) != LOG_OK) {
            int e = errno;
            LOG_ERROR("storage", "%s: create %020" PRId64 "%s: %s", dir, base, ext, strerror(e));
            segment_close_files(s);
            errno = e;
            return LOG_ERR_IO;
        }
    }
    return LOG_OK;
}

static int suffixed_path(char *out, size_t cap, const char *dir, int64_t base, const char *ext,
                         const char *suffix)
{
    int n = snprintf(out, cap, "%s/%020" PRId64 "%s%s", dir, base, ext, suffix);
    return n < 0 || (size_t)n >= cap ? LOG_ERR_INVALID : LOG_OK;
}

int segment_rename(const char *dir, int64_t base, const char *from, const char *to)
{
    /* Indexes first, the .log last: the .log's name is what recovery goes by. */
    static const char *const exts[3] = {".index", ".timeindex", ".log"};
    for (int i = 0; i < 3; i++) {
        char a[4096], b[4096];
        if (suffixed_path(a, sizeof(a), dir, base, exts[i], from) != LOG_OK ||
            suffixed_path(b, sizeof(b), dir, base, exts[i], to) != LOG_OK)
            return LOG_ERR_INVALID;
        if (rename(a, b) == -1) {
            if (errno == ENOENT && i < 2)
                continue; /* an index is rebuilt when missing */
            LOG_ERROR("storage", "rename %s -> %s: %s", a, b, strerror(errno));
            return LOG_ERR_IO;
        }
    }
    return LOG_OK;
}

int segment_delete_suffixed(const char *dir, int64_t base, const char *suffix)
{
    static const char *const exts[3] = {".log", ".index", ".timeindex"};
    int rc = LOG_OK;
    for (int i = 0; i < 3; i++) {
        char path[4096];
        if (suffixed_path(path, sizeof(path), dir, base, exts[i], suffix) != LOG_OK)
            return LOG_ERR_INVALID;
        if (unlink(path) == -1 && errno != ENOENT) {
            LOG_ERROR("storage", "unlink %s: %s", path, strerror(errno));
            rc = LOG_ERR_IO;
        }
    }
    return rc;
}

int segment_open_files(const char *dir, segment_t *s)
{
    if (segment_is_open(s))
        return LOG_OK;
    return open_all(dir, s, O_RDWR, O_RDWR, false);
}

/* Only the .log is synced: the indexes are derived data. After a power loss an
 * index may lack entries or end torn; log_open checks each segment's last index
 * entries and rebuilds an inconsistent index, and a sparser one only means a
 * longer scan. One fdatasync per flush instead of three is what makes
 * flush-per-produce (durable mode) affordable. */
int segment_flush(const segment_t *s)
{
    if (file_datasync(s->log_fd) != LOG_OK) {
        LOG_ERROR("storage", "fdatasync of segment %020" PRId64 " failed: %s", s->base_offset,
                  strerror(errno));
        return LOG_ERR_IO;
    }
    return LOG_OK;
}

int segment_delete_files(const char *dir, int64_t base)
{
    /* .log first: a crash part-way leaves orphan indexes, which the next open removes. */
    static const char *const exts[4] = {".log", ".index", ".timeindex", ".txnindex"};
    int rc = LOG_OK;
    for (int i = 0; i < 4; i++) {
        char path[4096];
        if (segment_path(path, sizeof(path), dir, base, exts[i]) != LOG_OK)
            return LOG_ERR_INVALID;
        if (unlink(path) == -1 && errno != ENOENT) {
            LOG_ERROR("storage", "unlink %s: %s", path, strerror(errno));
            rc = LOG_ERR_IO;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- header scanning */

/* A read window over a segment file, so that scanning many small batches costs one pread per
 * window rather than one per batch. `limit` is the end of valid data. */
typedef struct cursor {
    int fd;
    int64_t base; /* segment base, for messages */
    int64_t limit;
    int64_t wpos;
    size_t wlen;
    size_t cap;
    uint8_t *buf;
} cursor_t;

static void cursor_init(cursor_t *c, const segment_t *s, int64_t limit, uint8_t *buf, size_t cap)
{
    c->fd = s->log_fd;
    c->base = s->base_offset;
    c->limit = limit;
    c->wpos = 0;
    c->wlen = 0;
    c->cap = cap;
    c->buf = buf;
}

/* Makes [pos, pos+n) readable through *out (n <= cap, pos + n <= limit). */
static int cursor_get(cursor_t *c, int64_t pos, size_t n, const uint8_t **out)
{
    if (pos >= c->wpos && pos + (int64_t)n <= c->wpos + (int64_t)c->wlen) {
        *out = c->buf + (pos - c->wpos);
        return LOG_OK;
    }
    if (n > c->cap || pos < 0 || pos + (int64_t)n > c->limit)
        return LOG_ERR_CORRUPT;
    size_t want = c->cap;
    if ((int64_t)want > c->limit - pos)
        want = (size_t)(c->limit - pos);
    ssize_t got = pread_upto(c->fd, c->buf, want, pos);
    if (got < 0) {
        LOG_ERROR("storage", "read of segment %020" PRId64 " at %" PRId64 ": %s", c->base, pos,
                  strerror(errno));
        c->wlen = 0;
        return LOG_ERR_IO;
    }
    c->wpos = pos;
    c->wlen = (size_t)got;
    if ((size_t)got < n) {
        LOG_ERROR("storage", "segment %020" PRId64 " is shorter than expected (%" PRId64 ")",
                  c->base, pos + got);
        return LOG_ERR_CORRUPT;
    }
    *out = c->buf;
    return LOG_OK;
}

/* Reads the header of the batch at pos and checks its framing. 1 with *b (and *hdr pointing at
 * the 61 header bytes, valid until the next cursor call), 0 when pos is the end of data,
 * LOG_ERR_CORRUPT / LOG_ERR_IO otherwise. Why it is corrupt goes to *why when given. */
static int cursor_batch(cursor_t *c, int64_t pos, segment_batch_t *b, const uint8_t **hdr,
                        const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (pos >= c->limit)
        return 0;
    if (c->limit - pos < RB_HEADER_SIZE) {
        *why = "torn batch header";
        return LOG_ERR_CORRUPT;
    }
    const uint8_t *h;
    int rc = cursor_get(c, pos, RB_HEADER_SIZE, &h);
    if (rc != LOG_OK) {
        *why = "short file";
        return rc;
    }
    int32_t blen = rb_batch_length(h);
    if (blen < SEG_MIN_BATCH_LENGTH) {
        *why = "bad batchLength";
        return LOG_ERR_CORRUPT;
    }
    int64_t total = (int64_t)blen + RB_LOG_OVERHEAD;
    if (total > c->limit - pos) {
        *why = "torn batch";
        return LOG_ERR_CORRUPT;
    }
    if (rb_magic(h) != 2) {
        *why = "bad magic";
        return LOG_ERR_CORRUPT;
    }
    int32_t lod = rb_last_offset_delta(h);
    int64_t bo = rb_base_offset(h);
    if (lod < 0 || bo < 0 || bo > INT64_MAX - lod - 1) {
        *why = "bad offsets";
        return LOG_ERR_CORRUPT;
    }
    b->position = pos;
    b->size = total;
    b->base_offset = bo;
    b->last_offset = bo + lod;
    b->max_timestamp = rb_max_timestamp(h);
    if (hdr)
        *hdr = h;
    return 1;
}

/* Start position for a scan towards `offset`: the indexed batch at or before it, else 0. */
static int index_start(const segment_t *s, int64_t offset, int64_t *pos)
{
    *pos = 0;
    if (s->idx_entries == 0 || offset <= s->base_offset)
        return LOG_OK;
    int64_t rel = offset - s->base_offset;
    if (rel > INT32_MAX)
        rel = INT32_MAX;
    int32_t o = 0, p = 0;
    if (s->idx_last_pos >= 0 && rel >= s->idx_last_rel) {
        p = s->idx_last_pos; /* reads near the tail: no index I/O at all */
    } else {
        int64_t n = index_lookup(s->idx_fd, s->idx_entries, rel, &o, &p);
        if (n < 0)
            return (int)n;
        if (n == 0)
            p = 0;
    }
    if (p >= 0 && p < s->size)
        *pos = p;
    return LOG_OK;
}

/* Positions the scan at the first batch with lastOffset >= offset. */
static int seek_batch(const segment_t *s, cursor_t *c, int64_t offset, segment_batch_t *b)
{
    int64_t pos;
    int rc = index_start(s, offset, &pos);
    if (rc != LOG_OK)
        return rc;
    for (;;) {
        int r = cursor_batch(c, pos, b, NULL, NULL);
        if (r <= 0) {
            if (r < 0)
                LOG_ERROR("storage", "segment %020" PRId64 ": bad batch at %" PRId64,
                          s->base_offset, pos);
            return r;
        }
        if (b->last_offset >= offset)
            return 1;
        pos += b->size;
    }
}

int segment_locate(const segment_t *s, int64_t offset, segment_batch_t *b)
{
    uint8_t buf[SEG_READ_WINDOW];
    cursor_t c;
    cursor_init(&c, s, s->size, buf, sizeof(buf));
    return seek_batch(s, &c, offset, b);
}

/* Sums whole batches from `from` while they end at or before `limit`; returns the end. */
static int whole_batches_until(cursor_t *c, int64_t from, int64_t limit, int64_t *end)
{
    segment_batch_t b;
    int64_t pos = from;
    int r;
    while ((r = cursor_batch(c, pos, &b, NULL, NULL)) == 1 && pos + b.size <= limit)
        pos += b.size;
    *end = pos;
    return r < 0 ? r : LOG_OK;
}

int segment_read(const segment_t *s, int64_t offset, int32_t max_bytes, bool min_one,
                 segment_batch_t *first, int64_t *len)
{
    uint8_t buf[SEG_READ_WINDOW];
    cursor_t c;
    cursor_init(&c, s, s->size, buf, sizeof(buf));
    int r = seek_batch(s, &c, offset, first);
    if (r <= 0)
        return r;
    *len = first->size;
    if (first->size > max_bytes) {
        if (!min_one)
            *len = 0;
        return 1;
    }
    int64_t after = first->position + first->size, limit = first->position + max_bytes;
    if (limit >= s->size) {
        /* The rest of the segment fits: it is whole batches by construction. */
        *len = s->size - first->position;
        return 1;
    }
    /* Jump to the last indexed batch starting at or before the limit, so a large read walks
     * about one index interval of headers rather than all of them. */
    int64_t from = after;
    if (s->idx_entries > 0) {
        int32_t o, p;
        int64_t n = index_lookup_position(s->idx_fd, s->idx_entries, limit, &o, &p);
        if (n < 0)
            return (int)n;
        if (n > 0 && p > after && p <= limit)
            from = p;
    }
    int64_t end;
    int rc = whole_batches_until(&c, from, limit, &end);
    if (rc != LOG_OK && from != after) /* a bad index entry: walk the honest way */
        rc = whole_batches_until(&c, after, limit, &end);
    if (rc != LOG_OK)
        LOG_ERROR("storage", "segment %020" PRId64 ": bad batch at %" PRId64 ", read stops",
                  s->base_offset, end);
    *len = end - first->position;
    return 1;
}

int segment_find_timestamp(const segment_t *s, int64_t ts, int64_t min_offset,
                           segment_batch_t *b)
{
    int64_t target = s->base_offset;
    if (s->tidx_entries > 0) {
        int64_t t;
        int32_t o;
        int64_t n = timeindex_lookup(s->tidx_fd, s->tidx_entries, ts, &t, &o);
        if (n < 0)
            return (int)n;
        if (n > 0 && o >= 0)
            target = s->base_offset + o;
    }
    if (target < min_offset)
        target = min_offset;
    uint8_t buf[SEG_READ_WINDOW];
    cursor_t c;
    cursor_init(&c, s, s->size, buf, sizeof(buf));
    int r = seek_batch(s, &c, target, b);
    while (r == 1) {
        if (b->last_offset >= min_offset && b->max_timestamp >= ts)
            return 1;
        r = cursor_batch(&c, b->position + b->size, b, NULL, NULL);
    }
    return r;
}

int segment_max_timestamp_from(const segment_t *s, int64_t min_offset, int64_t *ts,
                               int64_t *offset)
{
    uint8_t buf[SEG_READ_WINDOW];
    cursor_t c;
    cursor_init(&c, s, s->size, buf, sizeof(buf));
    segment_batch_t b;
    int found = 0;
    int r = seek_batch(s, &c, min_offset, &b);
    while (r == 1) {
        if (!found || b.max_timestamp > *ts) {
            *ts = b.max_timestamp;
            *offset = b.last_offset;
            found = 1;
        }
        r = cursor_batch(&c, b.position + b.size, &b, NULL, NULL);
    }
    return r < 0 ? r : found;
}

/* ---------------------------------------------------------------- indexing appends */

/* Index entries produced by one append or recovery, written with one pwrite per file. */
typedef struct pending {
    uint8_t ib[SEG_PENDING * INDEX_ENTRY_SIZE];
    int ni;
    uint8_t tb[SEG_PENDING * TIMEINDEX_ENTRY_SIZE];
    int nt;
    bool rebuild; /* recovery: the files may already hold these entries */
} pending_t;

/* True when the file holds exactly these bytes at off. Recovery rebuilds the indexes of every
 * segment past the recovery point; after a crash of the process alone they are intact in the
 * page cache, and rewriting them would only dirty their pages again. */
static bool file_holds(int fd, const uint8_t *p, size_t n, int64_t off)
{
    uint8_t have[SEG_PENDING * TIMEINDEX_ENTRY_SIZE];
    return n <= sizeof(have) && pread_upto(fd, have, n, off) == (ssize_t)n && memcmp(have, p, n) == 0;
}

static int pending_flush(segment_t *s, pending_t *q)
{
    if (q->ni > 0) {
        if (!(q->rebuild && file_holds(s->idx_fd, q->ib, (size_t)q->ni * INDEX_ENTRY_SIZE,
                                       s->idx_entries * INDEX_ENTRY_SIZE)) &&
            index_write(s->idx_fd, s->idx_entries, q->ib, q->ni) != LOG_OK)
            return LOG_ERR_IO;
        s->idx_entries += q->ni;
        q->ni = 0;
    }
    if (q->nt > 0) {
        if (!(q->rebuild && file_holds(s->tidx_fd, q->tb, (size_t)q->nt * TIMEINDEX_ENTRY_SIZE,
                                       s->tidx_entries * TIMEINDEX_ENTRY_SIZE)) &&
            timeindex_write(s->tidx_fd, s->tidx_entries, q->tb, q->nt) != LOG_OK)
            return LOG_ERR_IO;
        s->tidx_entries += q->nt;
        q->nt = 0;
    }
    return LOG_OK;
}


/* Accounts one batch written at `pos`, adding index entries when the interval is reached.
 * The time-index entry written with an offset-index entry covers every batch up to and
 * including this one, which segment_load relies on. */
static int track_batch(segment_t *s, pending_t *q, int64_t pos, int64_t size, int64_t last_offset,
                       int64_t max_ts, int32_t interval)
{
    if (max_ts > s->max_timestamp) {
        s->max_timestamp = max_ts;
        s->max_ts_offset = last_offset;
    }
    if (s->bytes_since_index >= interval) {
        if (q->ni == SEG_PENDING || q->nt == SEG_PENDING) {
            int rc = pending_flush(s, q);
            if (rc != LOG_OK)
                return rc;
        }
        s->idx_last_rel = (int32_t)(last_offset - s->base_offset);
        s->idx_last_pos = (int32_t)pos;
        index_encode(q->ib + q->ni * INDEX_ENTRY_SIZE, s->idx_last_rel, s->idx_last_pos);
        q->ni++;
        if (s->max_timestamp > s->tidx_last_ts) {
            timeindex_encode(q->tb + q->nt * TIMEINDEX_ENTRY_SIZE, s->max_timestamp,
                             (int32_t)(s->max_ts_offset - s->base_offset));
            q->nt++;
            s->tidx_last_ts = s->max_timestamp;
        }
        s->bytes_since_index = 0;
    }
    s->bytes_since_index += size;
    s->size = pos + size;
    s->next_offset = last_offset + 1;
    return LOG_OK;
}

int segment_seal(segment_t *s)
{
    if (s->max_timestamp <= s->tidx_last_ts || s->max_ts_offset < s->base_offset)
        return LOG_OK;
    uint8_t e[TIMEINDEX_ENTRY_SIZE];
    timeindex_encode(e, s->max_timestamp, (int32_t)(s->max_ts_offset - s->base_offset));
    if (timeindex_write(s->tidx_fd, s->tidx_entries, e, 1) != LOG_OK)
        return LOG_ERR_IO;
    s->tidx_entries++;
    s->tidx_last_ts = s->max_timestamp;
    return LOG_OK;
}

int segment_check_batches(const uint8_t *batches, size_t len, int64_t *offset_count)
{
    size_t pos = 0;
    int64_t count = 0;
    while (pos < len) {
        if (len - pos < RB_HEADER_SIZE)
            return LOG_ERR_INVALID;
        const uint8_t *h = batches + pos;
        int32_t blen = rb_batch_length(h);
        if (blen < SEG_MIN_BATCH_LENGTH || (size_t)blen > len - pos - RB_LOG_OVERHEAD)
            return LOG_ERR_INVALID;
        if (rb_magic(h) != 2 || rb_last_offset_delta(h) < 0)
            return LOG_ERR_INVALID;
        count += (int64_t)rb_last_offset_delta(h) + 1;
        pos += (size_t)blen + RB_LOG_OVERHEAD;
    }
    if (len == 0)
        return LOG_ERR_INVALID;
    *offset_count = count;
    return LOG_OK;
}

/* Writes batches that carry their final offsets at the end of the .log and indexes them. */
static int write_tracked(segment_t *s, const uint8_t *batches, size_t len, int32_t index_interval,
                         int64_t now_ms)
{
    segment_t saved = *s;
    if (pwrite_all(s->log_fd, batches, len, s->size) != LOG_OK) {
        LOG_ERROR("storage", "append to segment %020" PRId64 " failed: %s", s->base_offset,
                  strerror(errno));
        (void)file_truncate(s->log_fd, saved.size);
        return LOG_ERR_IO;
    }
    if (s->size == 0 || s->first_append_ms < 0)
        s->first_append_ms = now_ms;
    pending_t q;
    q.ni = q.nt = 0;
    q.rebuild = false;
    int rc = LOG_OK;
    for (size_t pos = 0; pos < len && rc == LOG_OK;) {
        const uint8_t *h = batches + pos;
        int64_t size = rb_total_size(h);
        rc = track_batch(s, &q, saved.size + (int64_t)pos, size, rb_last_offset(h),
                         rb_max_timestamp(h), index_interval);
        pos += (size_t)size;
    }
    if (rc == LOG_OK)
        rc = pending_flush(s, &q);
    if (rc != LOG_OK) {
        LOG_ERROR("storage", "index write for segment %020" PRId64 " failed: %s", s->base_offset,
                  strerror(errno));
        (void)file_truncate(s->log_fd, saved.size);
        (void)index_truncate(s->idx_fd, saved.idx_entries);
        (void)timeindex_truncate(s->tidx_fd, saved.tidx_entries);
        *s = saved;
        return LOG_ERR_IO;
    }
    return LOG_OK;
}

int segment_append(segment_t *s, uint8_t *batches, size_t len, int32_t leader_epoch,
                   int32_t index_interval, int64_t now_ms)
{
    int64_t next = s->next_offset;
    for (size_t pos = 0; pos < len;) {
        uint8_t *h = batches + pos;
        rb_set_base_offset(h, next);
        rb_set_leader_epoch(h, leader_epoch);
        next += (int64_t)rb_last_offset_delta(h) + 1;
        pos += (size_t)rb_total_size(h);
    }
    return write_tracked(s, batches, len, index_interval, now_ms);
}

int segment_append_as_is(segment_t *s, const uint8_t *batches, size_t len, int32_t index_interval)
{
    int64_t count, next = s->next_offset;
    if (len == 0)
        return LOG_OK;
    if (segment_check_batches(batches, len, &count) != LOG_OK ||
        s->size + (int64_t)len > INT32_MAX)
        return LOG_ERR_INVALID;
    for (size_t pos = 0; pos < len;) {
        const uint8_t *h = batches + pos;
        if (rb_base_offset(h) < next || rb_last_offset(h) - s->base_offset > INT32_MAX)
            return LOG_ERR_INVALID;
        next = rb_last_offset(h) + 1;
        pos += (size_t)rb_total_size(h);
    }
    return write_tracked(s, batches, len, index_interval, -1);
}

/* ---------------------------------------------------------------- load and recovery */

/* The first batch's maxTimestamp stands in for the first-append time of a reopened segment. */
static void set_first_append_from_data(segment_t *s)
{
    s->first_append_ms = -1;
    if (s->size < RB_HEADER_SIZE)
        return;
    uint8_t h[RB_HEADER_SIZE];
    if (pread_upto(s->log_fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && rb_max_timestamp(h) >= 0)
        s->first_append_ms = rb_max_timestamp(h);
}

static int fd_size(int fd, int64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) == -1)
        return LOG_ERR_IO;
    *size = (int64_t)st.st_size;
    return LOG_OK;
}

/* Everything segment_load checks; LOG_ERR_CORRUPT with *why when the segment needs a rebuild. */
static int load_checks(const char *dir, segment_t *s, int64_t next_base, const char **why)
{
    int64_t isz, tsz;
    if (fd_size(s->log_fd, &s->size) != LOG_OK || fd_size(s->idx_fd, &isz) != LOG_OK ||
        fd_size(s->tidx_fd, &tsz) != LOG_OK) {
        LOG_ERROR("storage", "%s: fstat: %s", dir, strerror(errno));
        return LOG_ERR_IO;
    }
    *why = "index size not a whole number of entries";
    s->idx_entries = index_entries_for_size(isz, INDEX_ENTRY_SIZE);
    s->tidx_entries = index_entries_for_size(tsz, TIMEINDEX_ENTRY_SIZE);
    if (s->idx_entries < 0 || s->tidx_entries < 0)
        return LOG_ERR_CORRUPT;
    *why = "segment larger than 2 GiB";
    if (s->size > INT32_MAX)
        return LOG_ERR_CORRUPT;

    uint8_t buf[SEG_READ_WINDOW];
    cursor_t c;
    cursor_init(&c, s, s->size, buf, sizeof(buf));
    segment_batch_t b;
    int64_t walk_from = 0, idx_last_off = -1;
    if (s->idx_entries > 0) {
        int32_t o, p;
        int rc = index_entry(s->idx_fd, s->idx_entries - 1, &o, &p);
        if (rc == LOG_ERR_IO)
            return rc;
        *why = "last offset index entry does not match the log";
        if (rc != LOG_OK || o < 0 || p < 0 || p >= s->size)
            return LOG_ERR_CORRUPT;
        if (cursor_batch(&c, p, &b, NULL, NULL) != 1 || b.last_offset != s->base_offset + o)
            return LOG_ERR_CORRUPT;
        walk_from = p;
        idx_last_off = b.last_offset;
        s->idx_last_rel = o;
        s->idx_last_pos = p;
    }
    int64_t tidx_last_off = -1;
    if (s->tidx_entries > 0) {
        int32_t o;
        int rc = timeindex_entry(s->tidx_fd, s->tidx_entries - 1, &s->tidx_last_ts, &o);
        if (rc == LOG_ERR_IO)
            return rc;
        *why = "bad last time index entry";
        if (rc != LOG_OK || o < 0)
            return LOG_ERR_CORRUPT;
        tidx_last_off = s->base_offset + o;
        s->max_timestamp = s->tidx_last_ts;
        s->max_ts_offset = tidx_last_off;
    }

    if (next_base >= 0) {
        /* An older segment: its end is the next base, its largest timestamp the last entry. */
        *why = "index points past the next segment";
        if (tidx_last_off >= next_base || idx_last_off >= next_base)
            return LOG_ERR_CORRUPT;
        /* Every rolled segment whose batches carry timestamps has a time index entry. */
        *why = "time index missing its final entry";
        if (s->tidx_entries == 0 && s->size > 0 &&
            (cursor_batch(&c, 0, &b, NULL, NULL) != 1 || b.max_timestamp >= 0))
            return LOG_ERR_CORRUPT;
        s->next_offset = next_base;
        return LOG_OK;
    }

    /* The last segment: walk the tail, after the last indexed batch, to its end. Batches before
     * that batch are covered by the time index's entries. */
    int64_t pos = walk_from, prev_last = s->base_offset - 1;
    for (;;) {
        int r = cursor_batch(&c, pos, &b, NULL, why);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        if (b.base_offset <= prev_last || b.last_offset - s->base_offset > INT32_MAX) {
            *why = "offsets not increasing";
            return LOG_ERR_CORRUPT;
        }
        if (b.max_timestamp > s->max_timestamp) {
            s->max_timestamp = b.max_timestamp;
            s->max_ts_offset = b.last_offset;
        }
        prev_last = b.last_offset;
        s->next_offset = b.last_offset + 1;
        pos += b.size;
    }
    *why = "time index points past the log end";
    if (tidx_last_off >= s->next_offset && s->size > 0)
        return LOG_ERR_CORRUPT;
    s->bytes_since_index = s->size - walk_from;
    set_first_append_from_data(s);
    return LOG_OK;
}

int segment_load(const char *dir, int64_t base, int64_t next_base, segment_t *s)
{
    segment_init(s, base);
    if (open_all(dir, s, O_RDWR, O_RDWR, true) != LOG_OK) {
        /* A missing index is rebuilt; anything else is an I/O error. */
        if (errno != ENOENT)
            return LOG_ERR_IO;
        char path[4096];
        struct stat st;
        if (segment_path(path, sizeof(path), dir, base, ".log") != LOG_OK ||
            stat(path, &st) == -1)
            return LOG_ERR_IO;
        LOG_INFO("storage", "%s: segment %020" PRId64 " has no index, rebuilding", dir, base);
        return LOG_ERR_CORRUPT;
    }
    const char *why = "";
    int rc = load_checks(dir, s, next_base, &why);
    if (rc != LOG_OK) {
        if (rc == LOG_ERR_CORRUPT)
            LOG_WARN("storage", "%s: segment %020" PRId64 ": %s, rebuilding", dir, base, why);
        segment_close_files(s);
        segment_init(s, base);
    }
    return rc;
}

/* Cuts a rebuilt index file to its entries; left alone when it has that size already, since
 * ext4 starts writing a file back on close once it was truncated to zero (auto_da_alloc), which
 * cost ~150 us per file when recovery reopened every index with O_TRUNC. */
static int cut_to(int fd, int64_t size)
{
    int64_t have;
    if (fd_size(fd, &have) != LOG_OK)
        return LOG_ERR_IO;
    return have == size ? LOG_OK : file_truncate(fd, size);
}

int segment_recover(const char *dir, int64_t base, int32_t index_interval, segment_t *s,
                    int64_t *bytes_dropped)
{
    *bytes_dropped = 0;
    segment_init(s, base);
    int rc = open_all(dir, s, O_RDWR, O_RDWR | O_CREAT, false);
    if (rc != LOG_OK)
        return rc;
    int64_t fsize;
    if (fd_size(s->log_fd, &fsize) != LOG_OK) {
        LOG_ERROR("storage", "%s: fstat: %s", dir, strerror(errno));
        segment_close_files(s);
        return LOG_ERR_IO;
    }
    uint8_t *buf = malloc(SEG_RECOVER_WINDOW);
    if (!buf) {
        segment_close_files(s);
        return LOG_ERR_IO;
    }
    cursor_t c;
    cursor_init(&c, s, fsize, buf, SEG_RECOVER_WINDOW);
    pending_t q;
    q.ni = q.nt = 0;
    q.rebuild = true;
    int64_t pos = 0;
    const char *why = NULL;
    rc = LOG_OK;
    while (pos < fsize) {
        segment_batch_t b;
        const uint8_t *h;
        int r = cursor_batch(&c, pos, &b, &h, &why);
        if (r == LOG_ERR_IO) {
            rc = r;
            break;
        }
        if (r != 1)
            break;
        uint32_t want_crc = rb_crc(h);
        if (b.base_offset < s->next_offset) {
            why = "offsets not increasing";
            break;
        }
        if (b.last_offset - base > INT32_MAX || pos + b.size > INT32_MAX) {
            why = "batch beyond the segment's int32 range";
            break;
        }
        /* CRC over bytes 21..end in window-sized chunks: memory stays bounded for any batch. */
        uint32_t crc = 0;
        int64_t off = pos + RB_OFF_ATTRIBUTES, left = b.size - RB_OFF_ATTRIBUTES;
        while (left > 0 && r == 1) {
            size_t n = left > SEG_RECOVER_WINDOW ? SEG_RECOVER_WINDOW : (size_t)left;
            const uint8_t *p;
            int g = cursor_get(&c, off, n, &p);
            if (g != LOG_OK) {
                r = g;
                break;
            }
            crc = crc32c_update(crc, p, n);
            off += (int64_t)n;
            left -= (int64_t)n;
        }
        if (r == LOG_ERR_IO) {
            rc = r;
            break;
        }
        if (r != 1) {
            why = "short file";
            break;
        }
        if (crc != want_crc) {
            why = "CRC mismatch";
            break;
        }
        rc = track_batch(s, &q, pos, b.size, b.last_offset, b.max_timestamp, index_interval);
        if (rc != LOG_OK)
            break;
        pos += b.size;
    }
    free(buf);
    if (rc == LOG_OK)
        rc = pending_flush(s, &q);
    if (rc == LOG_OK)
        rc = cut_to(s->idx_fd, s->idx_entries * INDEX_ENTRY_SIZE);
    if (rc == LOG_OK)
        rc = cut_to(s->tidx_fd, s->tidx_entries * TIMEINDEX_ENTRY_SIZE);
    if (rc == LOG_OK && pos < fsize) {
        *bytes_dropped = fsize - pos;
        LOG_WARN("storage", "%s: segment %020" PRId64 ": %s at position %" PRId64
                 ", truncating: %" PRId64 " bytes dropped", dir, base, why ? why : "bad batch",
                 pos, fsize - pos);
        rc = file_truncate(s->log_fd, pos);
    }
    if (rc != LOG_OK) {
        LOG_ERROR("storage", "%s: recovery of segment %020" PRId64 " failed: %s", dir, base,
                  strerror(errno));
        segment_close_files(s);
        return rc;
    }
    s->size = pos;
    set_first_append_from_data(s);
    return LOG_OK;
}

/* ---------------------------------------------------------------- truncation */

int segment_truncate_to(segment_t *s, int64_t offset)
{
    segment_batch_t cut;
    int r = segment_locate(s, offset, &cut);
    if (r < 0)
        return r;
    if (r == 0) {
        /* No batch reaches offset: nothing to cut, but a next_offset taken from the following
         * segment's base (this one was not the last) comes down to it. */
        if (offset < s->next_offset)
            s->next_offset = offset;
        if (s->size > 0 && s->first_append_ms < 0)
            set_first_append_from_data(s);
        return LOG_OK;
    }
    int64_t new_next = offset < cut.base_offset ? offset : cut.base_offset;
    if (new_next < s->base_offset)
        new_next = s->base_offset;
    if (file_truncate(s->log_fd, cut.position) != LOG_OK) {
        LOG_ERROR("storage", "truncate of segment %020" PRId64 " failed: %s", s->base_offset,
                  strerror(errno));
        return LOG_ERR_IO;
    }

    /* Keep index entries of batches that survive (lastOffset < new_next). */
    int32_t io = 0, ip = 0;
    int64_t keep = 0;
    if (new_next > s->base_offset) {
        keep = index_lookup(s->idx_fd, s->idx_entries, new_next - 1 - s->base_offset, &io, &ip);
        if (keep < 0)
            return (int)keep;
    }
    int64_t tkeep = timeindex_count_below(s->tidx_fd, s->tidx_entries, new_next - s->base_offset);
    if (tkeep < 0)
        return (int)tkeep;
    if (index_truncate(s->idx_fd, keep) != LOG_OK ||
        timeindex_truncate(s->tidx_fd, tkeep) != LOG_OK)
        return LOG_ERR_IO;
    s->idx_entries = keep;
    s->idx_last_rel = keep > 0 ? io : -1;
    s->idx_last_pos = keep > 0 ? ip : -1;
    s->tidx_entries = tkeep;
    s->size = cut.position;
    s->next_offset = new_next;
    s->max_timestamp = s->max_ts_offset = s->tidx_last_ts = -1;
    if (tkeep > 0) {
        int32_t o;
        int rc = timeindex_entry(s->tidx_fd, tkeep - 1, &s->tidx_last_ts, &o);
        if (rc != LOG_OK)
            return rc;
        s->max_timestamp = s->tidx_last_ts;
        s->max_ts_offset = s->base_offset + o;
    }
    /* The time index covers batches up to the last indexed one; walk the rest. */
    int64_t walk_from = keep > 0 ? ip : 0;
    if (walk_from > s->size)
        walk_from = 0;
    uint8_t buf[SEG_READ_WINDOW];
    cursor_t c;
    cursor_init(&c, s, s->size, buf, sizeof(buf));
    segment_batch_t b;
    for (int64_t pos = walk_from; (r = cursor_batch(&c, pos, &b, NULL, NULL)) == 1; pos += b.size) {
        if (b.max_timestamp > s->max_timestamp) {
            s->max_timestamp = b.max_timestamp;
            s->max_ts_offset = b.last_offset;
        }
    }
    if (r < 0)
        return r;
    s->bytes_since_index = s->size - walk_from;
    if (s->size == 0)
        s->first_append_ms = -1;
    else if (s->first_append_ms < 0)
        set_first_append_from_data(s);
    return LOG_OK;
}

/* ---------------------------------------------------------------- compaction support */

int segment_file_last_offset(const char *path, int64_t *last)
{
    *last = -1;
    segment_t s;
    segment_init(&s, 0);
    do {
        s.log_fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (s.log_fd == -1 && errno == EINTR);
    if (s.log_fd == -1)
        return LOG_ERR_IO;
    int64_t size;
    if (fd_size(s.log_fd, &size) != LOG_OK) {
        segment_close_files(&s);
        return LOG_ERR_IO;
    }
    uint8_t buf[SEG_READ_WINDOW];
    cursor_t c;
    cursor_init(&c, &s, size, buf, sizeof(buf));
    segment_batch_t b;
    int64_t pos = 0;
    int r;
    while ((r = cursor_batch(&c, pos, &b, NULL, NULL)) == 1) {
        if (b.last_offset > *last)
            *last = b.last_offset;
        pos += b.size;
    }
    segment_close_files(&s);
    return r == LOG_ERR_IO ? LOG_ERR_IO : LOG_OK;
}
