/*
 * cleaner.c - log compaction (see cleaner.h for threads and memory).
 *
 * Output files: <base>.log.cleaned holds RecordBatches exactly as segment.c describes, with the
 * original offsets (gaps where records were removed); .index.cleaned / .timeindex.cleaned are the
 * indexes of index.c built over it. A job covers the closed segments [first segment, first
 * uncleanable offset) in groups (consecutive segments whose total size fits segment.bytes and
 * whose offsets fit one segment's int32 range); each group becomes one cleaned segment named after
 * its first base.
 *
 * One job:
 *  1. Key map: for every keyed record of the dirty section [first dirty, first uncleanable), in
 *     offset order, map[hash128(key)] = offset. When the map reaches its fill limit the pass ends
 *     there (map end); records at or after the map end are all kept.
 *  2. Rewrite every group. Per batch:
 *     - control and transactional batches are copied unchanged (transaction rules come later; an
 *       aborted transaction's records must never shadow committed ones, so they are not mapped);
 *     - a record goes when its key has a newer offset in the map, when it has no key (Kafka
 *       discards those on compacted topics), or when it is a tombstone below the map end whose
 *       batch's delete horizon has passed;
 *     - a batch keeping every record is copied byte for byte, unless it keeps tombstones without
 *       a delete horizon: then, as with any batch that lost records, it is rebuilt: same
 *       baseOffset, lastOffsetDelta, producer fields, leader epoch and codec (recompressed), the
 *       kept records re-encoded with their offset deltas and timestamps, new recordsCount,
 *       batchLength, maxTimestamp (kept for LogAppendTime) and CRC. A batch that keeps tombstones
 *       carries a delete horizon (attribute bit 0x40, baseTimestamp = the horizon, now +
 *       delete.retention.ms when first set, as KIP-534 does); a batch keeping nothing is dropped.
 *  3. fdatasync the cleaned files; the loop thread swaps them in (log_swap_cleaned) and moves the
 *     cleaner checkpoint to the map end.
 */
#include "storage/cleaner.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/compress.h"
#include "common/logger.h"
#include "protocol/record_batch.h"
#include "storage/segment.h"

#define CLEANER_READ_CHUNK ((size_t)1 << 20)
#define CLEANER_WRITE_CHUNK ((size_t)1 << 20)
#define CLEANER_MAX_DECOMPRESSED ((size_t)512 << 20)
#define CLEANER_MIN_SLOTS 16
#define CLEANER_ERR_CANCELLED (-100)

/* ---------------------------------------------------------------- key map */

typedef struct slot {
    uint64_t h1; /* 0 = empty (hashes have their low bit set) */
    uint64_t h2;
    int64_t offset;
} slot_t;

typedef struct keymap {
    slot_t *slots;
    size_t mask;
    size_t count, limit;
} keymap_t;

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* 128 bits from two differently seeded and multiplied lanes: a collision would make the cleaner
 * drop a record whose key only looks superseded, so 64 bits are not enough. */
static void key_hash(const uint8_t *p, size_t n, uint64_t *h1, uint64_t *h2)
{
    uint64_t a = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n, b = 0xc2b2ae3d27d4eb4fULL + (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        a = rotl64(a ^ (w * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
        b = rotl64(b ^ (w * 0x52dce729da3ed84bULL), 29) * 0x9fb21c651e98df25ULL + 0x38495ab5ULL;
    }
    uint64_t w = 0;
    for (size_t k = 0; i + k < n; k++)
        w |= (uint64_t)p[i + k] << (8 * k);
    a = rotl64(a ^ (w * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
    b = rotl64(b ^ (w * 0x52dce729da3ed84bULL), 29) * 0x9fb21c651e98df25ULL;
    *h1 = fmix64(a + rotl64(b, 17)) | 1;
    *h2 = fmix64(b ^ rotl64(a, 41));
}

static int map_init(keymap_t *m, size_t slots, double load_factor)
{
    m->slots = calloc(slots, sizeof(*m->slots));
    if (!m->slots)
        return LOG_ERR_IO;
    m->mask = slots - 1;
    m->count = 0;
    m->limit = (size_t)((double)slots * load_factor);
    if (m->limit < 1)
        m->limit = 1;
    if (m->limit > slots - 1)
        m->limit = slots - 1;
    return LOG_OK;
}

/* 1 stored, 0 the map is full (a new key would pass the fill limit). */
static int map_put(keymap_t *m, uint64_t h1, uint64_t h2, int64_t offset)
{
    for (size_t i = h2 & m->mask;; i = (i + 1) & m->mask) {
        slot_t *s = &m->slots[i];
        if (s->h1 == 0) {
            if (m->count >= m->limit)
                return 0;
            s->h1 = h1;
            s->h2 = h2;
            s->offset = offset;
            m->count++;
            return 1;
        }
        if (s->h1 == h1 && s->h2 == h2) {
            s->offset = offset;
            return 1;
        }
    }
}

static int64_t map_get(const keymap_t *m, uint64_t h1, uint64_t h2)
{
    for (size_t i = h2 & m->mask;; i = (i + 1) & m->mask) {
        const slot_t *s = &m->slots[i];
        if (s->h1 == 0)
            return -1;
        if (s->h1 == h1 && s->h2 == h2)
            return s->offset;
    }
}

/* ---------------------------------------------------------------- jobs */

typedef struct group {
    int start, len; /* indexes into job->segs */
    bool written;   /* its .cleaned files exist */
} group_t;

typedef struct job {
    log_t *log; /* identity only: the cleaner thread never dereferences it */
    char *dir;
    char name[160]; /* "<topic>-<partition>" for log lines */
    log_segment_info_t *segs;
    int nclean;
    group_t *groups;
    int ngroups;
    log_config_t cfg;
    int64_t now_ms;
    int64_t first_dirty, uncleanable;
    /* results */
    int rc;
    int64_t map_end;
    int64_t min_horizon;
    bool map_full;
    cleaner_stats_t st;
    /* working memory (thread side) */
    keymap_t map;
    uint8_t *rbuf;
    size_t rcap;
    buf_t scratch, plain, out;
} job_t;

struct cleaner {
    cleaner_options_t opt;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;     /* a job was queued, or stop */
    pthread_cond_t finished; /* the running job was let go of */
    job_t *job;              /* queued or running */
    job_t *done;             /* finished, for cleaner_poll */
    bool stop;
    atomic_bool cancel;
    int efd;
    cleaner_stats_t st;
};

static void job_free(job_t *j)
{
    if (!j)
        return;
    free(j->map.slots);
    free(j->rbuf);
    buf_free(&j->scratch);
    buf_free(&j->plain);
    buf_free(&j->out);
    free(j->groups);
    free(j->segs);
    free(j->dir);
    free(j);
}

/* Removes the .cleaned files a job left and frees it. */
static void job_discard(job_t *j)
{
    if (!j)
        return;
    for (int g = 0; g < j->ngroups; g++)
        if (j->groups[g].written)
            (void)segment_delete_suffixed(j->dir, j->segs[j->groups[g].start].base_offset,
                                          ".cleaned");
    job_free(j);
}

/* ---------------------------------------------------------------- reading segments */

typedef struct reader {
    job_t *job;
    int fd;
    int64_t base, size, pos;
    int64_t wpos;
    size_t wlen;
} reader_t;

static int reader_open(reader_t *r, job_t *j, const log_segment_info_t *s)
{
    memset(r, 0, sizeof(*r));
    r->job = j;
    r->base = s->base_offset;
    r->size = s->size;
    char path[4096];
    if (segment_path(path, sizeof(path), j->dir, s->base_offset, ".log") != LOG_OK)
        return LOG_ERR_INVALID;
    do {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (r->fd == -1 && errno == EINTR);
    if (r->fd == -1) {
        LOG_WARN("cleaner", "%s: open %s: %s", j->name, path, strerror(errno));
        return LOG_ERR_IO;
    }
    return LOG_OK;
}

static void reader_close(reader_t *r)
{
    if (r->fd >= 0)
        (void)close(r->fd);
    r->fd = -1;
}

/* Makes [pos, pos + n) of the file available in the job's read buffer. */
static int reader_window(reader_t *r, int64_t pos, size_t n)
{
    job_t *j = r->job;
    if (pos >= r->wpos && pos + (int64_t)n <= r->wpos + (int64_t)r->wlen)
        return LOG_OK;
    size_t want = n > CLEANER_READ_CHUNK ? n : CLEANER_READ_CHUNK;
    if ((int64_t)want > r->size - pos)
        want = (size_t)(r->size - pos);
    if (want > j->rcap) {
        uint8_t *nb = realloc(j->rbuf, want);
        if (!nb)
            return LOG_ERR_IO;
        j->rbuf = nb;
        j->rcap = want;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(r->fd, j->rbuf + got, want - got, (off_t)(pos + (int64_t)got));
        if (k == -1) {
            if (errno == EINTR)
                continue;
            LOG_WARN("cleaner", "%s: read of segment %020" PRId64 ": %s", j->name, r->base,
                     strerror(errno));
            return LOG_ERR_IO;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    r->wpos = pos;
    r->wlen = got;
    return got < n ? LOG_ERR_CORRUPT : LOG_OK;
}

/* The next whole batch: 1 with *batch / *len, 0 at the end, negative log_rc. */
static int reader_next(reader_t *r, const uint8_t **batch, size_t *len)
{
    if (r->pos >= r->size)
        return 0;
    if (r->size - r->pos < RB_HEADER_SIZE)
        return LOG_ERR_CORRUPT;
    int rc = reader_window(r, r->pos, RB_HEADER_SIZE);
    if (rc != LOG_OK)
        return rc;
    const uint8_t *h = r->job->rbuf + (r->pos - r->wpos);
    int32_t blen = rb_batch_length(h);
    if (blen < RB_HEADER_SIZE - RB_LOG_OVERHEAD || rb_magic(h) != 2 ||
        (int64_t)blen + RB_LOG_OVERHEAD > r->size - r->pos)
        return LOG_ERR_CORRUPT;
    size_t total = (size_t)blen + RB_LOG_OVERHEAD;
    rc = reader_window(r, r->pos, total);
    if (rc != LOG_OK)
        return rc;
    *batch = r->job->rbuf + (r->pos - r->wpos);
    *len = total;
    r->pos += (int64_t)total;
    return 1;
}

/* ---------------------------------------------------------------- pass 1: the key map */

static bool mappable(const uint8_t *b)
{
    return (rb_attributes(b) & (RB_ATTR_CONTROL | RB_ATTR_TRANSACTIONAL)) == 0;
}

static int build_map(cleaner_t *c, job_t *j)
{
    j->map_end = j->uncleanable;
    for (int i = 0; i < j->nclean; i++) {
        const log_segment_info_t *s = &j->segs[i];
        if (s->end_offset <= j->first_dirty)
            continue;
        reader_t r;
        int rc = reader_open(&r, j, s);
        if (rc != LOG_OK)
            return rc;
        const uint8_t *b;
        size_t len;
        while ((rc = reader_next(&r, &b, &len)) == 1) {
            if (atomic_load(&c->cancel)) {
                rc = CLEANER_ERR_CANCELLED;
                break;
            }
            if (rb_last_offset(b) < j->first_dirty || !mappable(b))
                continue;
            const uint8_t *recs;
            size_t rlen;
            if (rb_records_plain(b, len, &j->scratch, CLEANER_MAX_DECOMPRESSED, &recs, &rlen) != 0)
                continue; /* unreadable: its records are kept as they are (pass 2) */
            rb_iter_t it;
            rb_iter_init(&it, recs, rlen, rb_records_count(b));
            rb_record_t rec;
            int64_t base = rb_base_offset(b);
            while (rb_iter_next(&it, &rec) == 1) {
                int64_t off = base + rec.offset_delta;
                if (off < j->first_dirty || rec.key_len < 0)
                    continue;
                uint64_t h1, h2;
                key_hash(rec.key, (size_t)rec.key_len, &h1, &h2);
                if (!map_put(&j->map, h1, h2, off)) {
                    j->map_end = off;
                    j->map_full = true;
                    reader_close(&r);
                    return LOG_OK;
                }
            }
        }
        reader_close(&r);
        if (rc < 0)
            return rc;
    }
    return LOG_OK;
}

/* ---------------------------------------------------------------- pass 2: rewriting */

static bool keep_record(const job_t *j, const rb_record_t *rec, int64_t off, bool has_horizon,
                        int64_t horizon)
{
    if (rec->key_len < 0)
        return false;
    uint64_t h1, h2;
    key_hash(rec->key, (size_t)rec->key_len, &h1, &h2);
    if (map_get(&j->map, h1, h2) > off)
        return false;
    if (rec->value_len < 0 && has_horizon && j->now_ms >= horizon && off < j->map_end)
        return false;
    return true;
}

static void put_bytes(buf_t *o, const uint8_t *p, int32_t len)
{
    buf_put_varint(o, len);
    if (len > 0)
        buf_put(o, p, (size_t)len);
}

/* Appends the cleaned form of batch b (len bytes) to j->out, or nothing when it keeps nothing. */
static int clean_batch(job_t *j, const uint8_t *b, size_t len)
{
    int32_t count = rb_records_count(b);
    j->st.records_read += count > 0 ? count : 0;
    if (!mappable(b)) {
        buf_put(&j->out, b, len);
        j->st.records_kept += count > 0 ? count : 0;
        return LOG_OK;
    }
    const uint8_t *recs;
    size_t rlen;
    if (rb_records_plain(b, len, &j->scratch, CLEANER_MAX_DECOMPRESSED, &recs, &rlen) != 0) {
        LOG_WARN("cleaner", "%s: batch at offset %" PRId64 " cannot be decompressed, kept as is",
                 j->name, rb_base_offset(b));
        buf_put(&j->out, b, len);
        return LOG_OK;
    }
    int16_t attrs = rb_attributes(b);
    bool has_horizon = (attrs & RB_ATTR_DELETE_HORIZON) != 0;
    int64_t base = rb_base_offset(b), base_ts = rb_base_timestamp(b);
    int64_t horizon = has_horizon ? base_ts : -1;
    rb_iter_t it;
    rb_record_t rec;
    int total = 0, kept = 0, tombstones = 0, r;
    rb_iter_init(&it, recs, rlen, count);
    while ((r = rb_iter_next(&it, &rec)) == 1) {
        total++;
        if (keep_record(j, &rec, base + rec.offset_delta, has_horizon, horizon)) {
            kept++;
            tombstones += rec.value_len < 0;
        } else if (rec.value_len < 0 && rec.key_len >= 0) {
            j->st.tombstones_dropped++;
        }
    }
    if (r < 0) {
        LOG_WARN("cleaner", "%s: batch at offset %" PRId64 " has malformed records, kept as is",
                 j->name, base);
        buf_put(&j->out, b, len);
        return LOG_OK;
    }
    j->st.records_kept += kept;
    if (kept == 0)
        return LOG_OK;
    if (kept == total && (tombstones == 0 || has_horizon)) {
        if (tombstones > 0 && (j->min_horizon < 0 || horizon < j->min_horizon))
            j->min_horizon = horizon;
        buf_put(&j->out, b, len);
        return LOG_OK;
    }

    /* Rebuild with the kept records. Absolute timestamps are base + delta in the old batch. */
    int64_t new_base_ts;
    if (tombstones > 0) {
        if (!has_horizon) {
            int64_t d = j->cfg.delete_retention_ms;
            horizon = j->now_ms > INT64_MAX - d ? INT64_MAX : j->now_ms + d;
        }
        attrs |= RB_ATTR_DELETE_HORIZON;
        new_base_ts = horizon;
        if (j->min_horizon < 0 || horizon < j->min_horizon)
            j->min_horizon = horizon;
    } else {
        attrs &= (int16_t)~RB_ATTR_DELETE_HORIZON;
        new_base_ts = -1;
    }
    int64_t max_ts = -1;
    bool first = true;
    j->plain.len = 0;
    rb_iter_init(&it, recs, rlen, count);
    buf_t body;
    buf_init(&body);
    while (rb_iter_next(&it, &rec) == 1) {
        if (!keep_record(j, &rec, base + rec.offset_delta, has_horizon, horizon))
            continue;
        int64_t ts = (int64_t)((uint64_t)base_ts + (uint64_t)rec.timestamp_delta);
        if (first && new_base_ts == -1)
            new_base_ts = ts;
        if (first || ts > max_ts)
            max_ts = ts;
        first = false;
        body.len = 0;
        buf_put_i8(&body, rec.attributes);
        buf_put_varlong(&body, (int64_t)((uint64_t)ts - (uint64_t)new_base_ts));
        buf_put_varint(&body, rec.offset_delta);
        put_bytes(&body, rec.key, rec.key_len);
        put_bytes(&body, rec.value, rec.value_len);
        buf_put_varint(&body, rec.header_count);
        if (rec.headers_len > 0)
            buf_put(&body, rec.headers, rec.headers_len);
        buf_put_varint(&j->plain, (int32_t)body.len);
        buf_put(&j->plain, body.data, body.len);
    }
    bool oom = body.oom || j->plain.oom;
    buf_free(&body);
    if (oom)
        return LOG_ERR_IO;
    if (attrs & RB_ATTR_LOG_APPEND_TIME)
        max_ts = rb_max_timestamp(b);
    size_t start = j->out.len;
    buf_put(&j->out, b, RB_HEADER_SIZE);
    if (j->out.oom ||
        compress_compress(rb_codec(b), j->plain.len ? j->plain.data : (const uint8_t *)"",
                          j->plain.len, &j->out) != 0) {
        j->out.len = start;
        return LOG_ERR_IO;
    }
    size_t blen = j->out.len - start - RB_LOG_OVERHEAD;
    if (blen > INT32_MAX) {
        j->out.len = start;
        return LOG_ERR_INVALID;
    }
    uint8_t *h = j->out.data + start;
    be_put32(h + RB_OFF_BATCH_LENGTH, (uint32_t)blen);
    be_put16(h + RB_OFF_ATTRIBUTES, (uint16_t)attrs);
    be_put64(h + RB_OFF_BASE_TIMESTAMP, (uint64_t)new_base_ts);
    be_put64(h + RB_OFF_MAX_TIMESTAMP, (uint64_t)max_ts);
    be_put32(h + RB_OFF_RECORDS_COUNT, (uint32_t)kept);
    rb_update_crc(h);
    return LOG_OK;
}

static int flush_out(job_t *j, segment_t *out)
{
    if (j->out.len == 0)
        return LOG_OK;
    int rc = segment_append_as_is(out, j->out.data, j->out.len, j->cfg.index_interval_bytes);
    j->st.bytes_written += (int64_t)j->out.len;
    j->out.len = 0;
    return rc;
}

static int clean_group(cleaner_t *c, job_t *j, group_t *g)
{
    int64_t gbase = j->segs[g->start].base_offset;
    segment_t out;
    int rc = segment_create_suffixed(j->dir, gbase, ".cleaned", &out);
    if (rc != LOG_OK)
        return rc;
    g->written = true;
    for (int i = g->start; i < g->start + g->len && rc == LOG_OK; i++) {
        reader_t r;
        rc = reader_open(&r, j, &j->segs[i]);
        if (rc != LOG_OK)
            break;
        const uint8_t *b;
        size_t len;
        int n;
        while ((n = reader_next(&r, &b, &len)) == 1) {
            if (atomic_load(&c->cancel)) {
                rc = CLEANER_ERR_CANCELLED;
                break;
            }
            j->st.bytes_read += (int64_t)len;
            rc = clean_batch(j, b, len);
            if (rc == LOG_OK && j->out.len >= CLEANER_WRITE_CHUNK)
                rc = flush_out(j, &out);
            if (rc != LOG_OK)
                break;
        }
        if (n < 0 && rc == LOG_OK)
            rc = n;
        reader_close(&r);
    }
    if (rc == LOG_OK)
        rc = flush_out(j, &out);
    if (rc == LOG_OK)
        rc = segment_seal(&out);
    if (rc == LOG_OK)
        rc = segment_flush(&out);
    segment_close_files(&out);
    j->out.len = 0;
    return rc;
}

static size_t map_slots(const cleaner_t *c, const job_t *j)
{
    int64_t dirty = 0;
    for (int i = 0; i < j->nclean; i++)
        if (j->segs[i].end_offset > j->first_dirty)
            dirty += j->segs[i].size;
    /* A record takes at least 8 bytes of log, so this bounds the keys of uncompressed data;
     * compressed data may need a second pass. */
    double want = ((double)dirty / 8.0 + 16.0) / (c->opt.load_factor > 0 ? c->opt.load_factor : 0.9);
    int64_t cap = c->opt.dedupe_buffer_bytes;
    if (cap <= 0 || cap > CLEANER_MAX_MAP_BYTES)
        cap = CLEANER_MAX_MAP_BYTES;
    size_t max_slots = CLEANER_MIN_SLOTS;
    while ((int64_t)(max_slots * 2 * sizeof(slot_t)) <= cap)
        max_slots *= 2;
    size_t slots = CLEANER_MIN_SLOTS;
    while (slots < max_slots && (double)slots < want)
        slots *= 2;
    return slots;
}

static int run_job(cleaner_t *c, job_t *j)
{
    if (atomic_load(&c->cancel))
        return CLEANER_ERR_CANCELLED;
    int rc = map_init(&j->map, map_slots(c, j), c->opt.load_factor > 0 ? c->opt.load_factor : 0.9);
    if (rc == LOG_OK)
        rc = build_map(c, j);
    for (int g = 0; g < j->ngroups && rc == LOG_OK; g++)
        rc = clean_group(c, j, &j->groups[g]);
    free(j->map.slots);
    j->map.slots = NULL;
    if (rc != LOG_OK) {
        for (int g = 0; g < j->ngroups; g++)
            if (j->groups[g].written) {
                (void)segment_delete_suffixed(j->dir, j->segs[j->groups[g].start].base_offset,
                                              ".cleaned");
                j->groups[g].written = false;
            }
    }
    return rc;
}

static void *cleaner_main(void *arg)
{
    cleaner_t *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && (c->job == NULL || c->done != NULL))
            pthread_cond_wait(&c->cond, &c->mu);
        if (c->stop)
            break;
        job_t *j = c->job;
        pthread_mutex_unlock(&c->mu);
        j->rc = run_job(c, j);
        pthread_mutex_lock(&c->mu);
        c->job = NULL;
        c->done = j;
        atomic_store(&c->cancel, false);
        pthread_cond_broadcast(&c->finished);
        uint64_t one = 1;
        while (write(c->efd, &one, sizeof(one)) == -1 && errno == EINTR) {
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---------------------------------------------------------------- public */

cleaner_t *cleaner_create(const cleaner_options_t *opt)
{
    cleaner_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->opt = *opt;
    if (!(c->opt.load_factor > 0.0 && c->opt.load_factor <= 1.0))
        c->opt.load_factor = 0.9;
    atomic_init(&c->cancel, false);
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd == -1) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_cond_init(&c->finished, NULL);
    int e = pthread_create(&c->thread, NULL, cleaner_main, c);
    if (e != 0) {
        (void)close(c->efd);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cond);
        pthread_cond_destroy(&c->finished);
        free(c);
        errno = e;
        return NULL;
    }
    return c;
}

void cleaner_destroy(cleaner_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    atomic_store(&c->cancel, true);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    job_discard(c->job);
    job_discard(c->done);
    (void)close(c->efd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    pthread_cond_destroy(&c->finished);
    free(c);
}

int cleaner_event_fd(const cleaner_t *c) { return c->efd; }

bool cleaner_busy(const cleaner_t *c)
{
    pthread_mutex_t *mu = (pthread_mutex_t *)&c->mu;
    pthread_mutex_lock(mu);
    bool busy = c->job != NULL || c->done != NULL;
    pthread_mutex_unlock(mu);
    return busy;
}

cleaner_stats_t cleaner_get_stats(const cleaner_t *c) { return c->st; }

typedef struct plan {
    int nclean;               /* segments [0, nclean) are rewritten */
    int64_t first_dirty, uncleanable;
    int64_t clean_bytes, dirty_bytes;
    bool forced;
} plan_t;

static void make_plan(const log_t *l, int64_t now, const log_segment_info_t *segs, int n, plan_t *p)
{
    const log_config_t *cfg = log_get_config(l);
    memset(p, 0, sizeof(*p));
    int64_t start = log_start_offset(l), end = log_end_offset(l);
    int64_t cp = log_cleaner_checkpoint(l);
    p->first_dirty = cp < start || cp > end ? start : cp;
    p->nclean = n - 1;
    p->uncleanable = segs[n - 1].base_offset;
    for (int i = 0; i < n - 1; i++) {
        if (segs[i].end_offset <= p->first_dirty)
            continue;
        if (cfg->min_compaction_lag_ms > 0 && segs[i].max_timestamp >= 0 &&
            segs[i].max_timestamp > now - cfg->min_compaction_lag_ms) {
            p->nclean = i;
            p->uncleanable = segs[i].base_offset;
            break;
        }
    }
    for (int i = 0; i < p->nclean; i++) {
        if (segs[i].end_offset <= p->first_dirty) {
            p->clean_bytes += segs[i].size;
        } else {
            p->dirty_bytes += segs[i].size;
            if (segs[i].max_timestamp >= 0 && cfg->max_compaction_lag_ms < INT64_MAX &&
                segs[i].max_timestamp < now - cfg->max_compaction_lag_ms)
                p->forced = true;
        }
    }
    int64_t hz = log_cleaner_horizon(l);
    if (hz >= 0 && now >= hz)
        p->forced = true;
}

double cleaner_priority(const log_t *l, int64_t now_ms)
{
    const log_config_t *cfg = log_get_config(l);
    if (!cfg->cleanup_compact)
        return -1;
    log_segment_info_t *segs;
    int n;
    if (log_segments(l, &segs, &n) != LOG_OK)
        return -1;
    plan_t p;
    make_plan(l, now_ms, segs, n, &p);
    free(segs);
    if (p.nclean == 0 || (p.dirty_bytes == 0 && !p.forced))
        return -1;
    double ratio = (double)p.dirty_bytes / (double)(p.clean_bytes + p.dirty_bytes > 0
                                                        ? p.clean_bytes + p.dirty_bytes : 1);
    if (p.forced)
        return 1.0 + ratio;
    if (p.first_dirty >= p.uncleanable || ratio < cfg->min_cleanable_ratio)
        return -1;
    return ratio;
}

int cleaner_start(cleaner_t *c, log_t *l, int64_t now_ms)
{
    if (cleaner_busy(c))
        return LOG_ERR_INVALID;
    job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return LOG_ERR_IO;
    int n;
    if (log_segments(l, &j->segs, &n) != LOG_OK) {
        free(j);
        return LOG_ERR_IO;
    }
    plan_t p;
    make_plan(l, now_ms, j->segs, n, &p);
    if (p.nclean == 0) {
        job_free(j);
        return LOG_ERR_INVALID;
    }
    j->log = l;
    j->dir = strdup(log_dir(l));
    j->groups = calloc((size_t)p.nclean, sizeof(*j->groups));
    if (!j->dir || !j->groups) {
        job_free(j);
        return LOG_ERR_IO;
    }
    const char *slash = strrchr(j->dir, '/');
    snprintf(j->name, sizeof(j->name), "%s", slash ? slash + 1 : j->dir);
    j->nclean = p.nclean;
    j->cfg = *log_get_config(l);
    j->now_ms = now_ms;
    j->first_dirty = p.first_dirty;
    j->uncleanable = p.uncleanable;
    j->min_horizon = -1;
    buf_init(&j->scratch);
    buf_init(&j->plain);
    buf_init(&j->out);
    for (int i = 0; i < j->nclean;) {
        group_t *g = &j->groups[j->ngroups++];
        g->start = i;
        int64_t bytes = j->segs[i].size, gbase = j->segs[i].base_offset;
        i++;
        while (i < j->nclean && bytes + j->segs[i].size <= j->cfg.segment_bytes &&
               j->segs[i].end_offset - 1 - gbase <= INT32_MAX) {
            bytes += j->segs[i].size;
            i++;
        }
        g->len = i - g->start;
    }
    pthread_mutex_lock(&c->mu);
    c->job = j;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    LOG_DEBUG("cleaner", "%s: cleaning offsets below %" PRId64 " (dirty from %" PRId64 ")",
              j->name, j->uncleanable, j->first_dirty);
    return LOG_OK;
}

static void add_stats(cleaner_stats_t *to, const cleaner_stats_t *s)
{
    to->records_read += s->records_read;
    to->records_kept += s->records_kept;
    to->bytes_read += s->bytes_read;
    to->bytes_written += s->bytes_written;
    to->tombstones_dropped += s->tombstones_dropped;
}

log_t *cleaner_poll(cleaner_t *c)
{
    uint64_t v;
    while (read(c->efd, &v, sizeof(v)) == -1 && errno == EINTR) {
    }
    pthread_mutex_lock(&c->mu);
    job_t *j = c->done;
    c->done = NULL;
    if (c->job)
        pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (!j)
        return NULL;
    c->st.jobs++;
    if (j->rc != LOG_OK) {
        if (j->rc != CLEANER_ERR_CANCELLED)
            LOG_WARN("cleaner", "%s: cleaning failed: %s", j->name, log_rc_str(j->rc));
        job_discard(j);
        return NULL;
    }
    log_t *l = j->log;
    bool io_error = false;
    int swapped = 0;
    if (log_end_offset(l) < j->uncleanable) {
        LOG_INFO("cleaner", "%s: log truncated while cleaning, result dropped", j->name);
        job_discard(j);
        return l;
    }
    for (int g = 0; g < j->ngroups; g++) {
        group_t *gr = &j->groups[g];
        int rc = log_swap_cleaned(l, &j->segs[gr->start], gr->len);
        if (rc == LOG_OK) {
            gr->written = false;
            swapped++;
        } else if (rc == LOG_ERR_INVALID) {
            LOG_INFO("cleaner", "%s: segments %020" PRId64 ".. changed while cleaning, skipped",
                     j->name, j->segs[gr->start].base_offset);
        } else {
            io_error = true;
            gr->written = false; /* left for recovery, or already gone */
        }
    }
    if (!io_error) {
        log_set_cleaner_checkpoint(l, j->map_end);
        log_set_cleaner_horizon(l, j->min_horizon);
    }
    if (j->map_full)
        c->st.passes_map_full++;
    add_stats(&c->st, &j->st);
    LOG_INFO("cleaner", "%s: cleaned %d segment group(s) below offset %" PRId64 ": %" PRId64
             " of %" PRId64 " records kept, %" PRId64 " tombstones removed, %" PRId64 " -> %"
             PRId64 " bytes; dirty section now starts at %" PRId64 "%s", j->name, swapped,
             j->uncleanable, j->st.records_kept, j->st.records_read, j->st.tombstones_dropped,
             j->st.bytes_read, j->st.bytes_written, j->map_end,
             j->map_full ? " (key map full: another pass follows)" : "");
    job_discard(j);
    return l;
}

void cleaner_forget(cleaner_t *c, log_t *l)
{
    if (!c || !l)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->job && c->job->log == l) {
        atomic_store(&c->cancel, true);
        job_t *j = c->job;
        while (c->job == j) {
            if (c->done) {
                /* The thread waits for the finished job to be collected before taking the
                 * queued one: the queued one was never started, drop it here. */
                c->job = NULL;
                atomic_store(&c->cancel, false);
                job_discard(j);
                break;
            }
            pthread_cond_wait(&c->finished, &c->mu);
        }
    }
    job_t *d = NULL;
    if (c->done && c->done->log == l) {
        d = c->done;
        c->done = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    job_discard(d);
}

int cleaner_clean_now(cleaner_t *c, log_t *l, int64_t now_ms)
{
    int rc = cleaner_start(c, l, now_ms);
    if (rc != LOG_OK)
        return rc;
    for (;;) {
        struct pollfd pfd = {.fd = c->efd, .events = POLLIN};
        int n = poll(&pfd, 1, 1000);
        if (n == -1 && errno != EINTR)
            return LOG_ERR_IO;
        pthread_mutex_lock(&c->mu);
        bool done = c->done != NULL;
        pthread_mutex_unlock(&c->mu);
        if (done)
            break;
    }
    return cleaner_poll(c) == l ? LOG_OK : LOG_ERR_IO;
}
