/*
 * partition_txn.c - producer state of a partition: load (snapshot, replay,
 * .txnindex), Produce checks, transaction markers, last stable offset and
 * aborted transactions for read_committed, snapshots at clean shutdown.
 * File layouts: producer_state.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/logger.h"
#include "protocol/kerr.h"
#include "protocol/record_batch.h"
#include "storage/segment.h"
#include "txn/partition_txn.h"

#define PTXN_MAX_CONTROL_BATCH (1 << 20)

static int pread_full(int fd, void *buf, size_t n, int64_t pos)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(pos + (int64_t)got));
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int ptxn_decode_control_key(const uint8_t *key, int32_t key_len, bool *commit)
{
    if (key == NULL || key_len < 4)
        return -1;
    int16_t version = (int16_t)be_get16(key);
    int16_t type = (int16_t)be_get16(key + 2);
    if (version != 0)
        return 0;
    if (type != 0 && type != 1)
        return 0;
    *commit = type == 1;
    return 1;
}

/* Reads the marker type of a whole control batch, and the coordinator epoch from its value
 * (int16 version, int32 coordinator epoch; 0 when absent). 1 with *commit, 0 not a marker, -1
 * malformed. */
static int control_batch_type(const uint8_t *batch, size_t len, bool *commit, int32_t *coordinator_epoch)
{
    const uint8_t *recs;
    size_t rlen;
    buf_t scratch;
    buf_init(&scratch);
    int rc = -1;
    if (rb_records_plain(batch, len, &scratch, PTXN_MAX_CONTROL_BATCH, &recs, &rlen) == 0) {
        rb_iter_t it;
        rb_iter_init(&it, recs, rlen, rb_records_count(batch));
        rb_record_t rec;
        if (rb_iter_next(&it, &rec) == 1) {
            rc = ptxn_decode_control_key(rec.key, rec.key_len, commit);
            if (rc == 1 && rec.value && rec.value_len >= 6)
                *coordinator_epoch = (int32_t)be_get32(rec.value + 2);
        }
    }
    buf_free(&scratch);
    return rc;
}

static void txnindex_append(const char *dir, int64_t base, const pstate_aborted_t *a)
{
    char path[4096];
    if (segment_path(path, sizeof(path), dir, base, ".txnindex") != 0)
        return;
    buf_t b;
    buf_init(&b);
    pstate_txnindex_put(&b, a);
    int fd;
    do {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    } while (fd == -1 && errno == EINTR);
    if (fd == -1) {
        LOG_ERROR("txn", "open %s: %s", path, strerror(errno));
        buf_free(&b);
        return;
    }
    size_t done = 0;
    while (done < b.len) {
        ssize_t n = write(fd, b.data + done, b.len - done);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            LOG_ERROR("txn", "write %s: %s", path, strerror(errno));
            break;
        }
        done += (size_t)n;
    }
    if (close(fd) == -1 && errno != EINTR)
        LOG_WARN("txn", "close %s: %s", path, strerror(errno));
    buf_free(&b);
}

/* Applies one batch met during replay (header in hdr; whole batch read when it is a control batch). */
static void replay_batch(partition_t *p, producer_state_t *ps, const uint8_t *hdr, int fd, int64_t pos,
                         const char *dir)
{
    int64_t pid = rb_producer_id(hdr);
    if (pid < 0)
        return;
    int16_t attrs = rb_attributes(hdr);
    if (attrs & RB_ATTR_CONTROL) {
        int64_t size = rb_total_size(hdr);
        if (size > PTXN_MAX_CONTROL_BATCH)
            return;
        uint8_t *b = malloc((size_t)size);
        if (b == NULL)
            return;
        bool commit = false;
        int32_t coordinator_epoch = 0;
        if (pread_full(fd, b, (size_t)size, pos) == 0 &&
            control_batch_type(b, (size_t)size, &commit, &coordinator_epoch) == 1) {
            pstate_aborted_t a;
            if (pstate_apply_marker(ps, pid, rb_producer_epoch(hdr), commit, coordinator_epoch, rb_base_offset(hdr),
                                    rb_max_timestamp(hdr), &a) == 1) {
                pstate_add_aborted(ps, &a);
                (void)dir;
            }
        }
        free(b);
        return;
    }
    (void)p;
    pstate_update(ps, pid, rb_producer_epoch(hdr), rb_base_sequence(hdr), rb_last_offset_delta(hdr) + 1,
                  rb_base_offset(hdr), rb_last_offset(hdr), rb_max_timestamp(hdr),
                  (attrs & RB_ATTR_TRANSACTIONAL) != 0);
}

/* Replays batch headers from `from` to the log end. 0, or -1 on a read error. */
static int replay_log(partition_t *p, producer_state_t *ps, int64_t from)
{
    int64_t off = from, end = log_end_offset(p->log);
    while (off < end) {
        log_read_t rd;
        int rc = log_read(p->log, off, INT32_MAX, true, &rd);
        if (rc != LOG_OK) {
            LOG_ERROR("txn", "replaying %s at %" PRId64 ": %s", p->dir, off, log_rc_str(rc));
            return -1;
        }
        if (rd.len <= 0)
            break;
        int64_t next = off;
        int64_t pos = rd.position, stop = rd.position + rd.len;
        uint8_t hdr[RB_HEADER_SIZE];
        while (pos + RB_HEADER_SIZE <= stop) {
            if (pread_full(rd.fd, hdr, RB_HEADER_SIZE, pos) != 0)
                return -1;
            int64_t size = rb_total_size(hdr);
            if (size < RB_HEADER_SIZE || pos + size > stop)
                break;
            if (rb_last_offset(hdr) >= off)
                replay_batch(p, ps, hdr, rd.fd, pos, p->dir);
            if (rb_last_offset(hdr) + 1 > next)
                next = rb_last_offset(hdr) + 1;
            pos += size;
        }
        if (next <= off)
            break;
        off = next;
    }
    return 0;
}

static int load_file(const char *dir, const char *name, buf_t *out)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -1;
    out->len = 0;
    return fs_read_file(path, out, (size_t)1 << 30);
}

static void unlink_name(const char *dir, const char *name)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return;
    if (unlink(path) == -1 && errno != ENOENT)
        LOG_WARN("txn", "unlink %s: %s", path, strerror(errno));
}

static producer_state_t *load_state(partition_t *p)
{
    producer_state_t *ps = pstate_new();
    if (ps == NULL)
        return NULL;
    int64_t start = log_start_offset(p->log), end = log_end_offset(p->log);
    int64_t snap = -1;
    DIR *d = opendir(p->dir);
    if (d == NULL) {
        LOG_ERROR("txn", "opendir %s: %s", p->dir, strerror(errno));
    } else {
        buf_t data;
        buf_init(&data);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int64_t base;
            const char *ext;
            if (!segment_parse_name(e->d_name, &base, &ext))
                continue;
            if (strcmp(ext, ".snapshot") == 0) {
                if (base > end) {
                    unlink_name(p->dir, e->d_name); /* the log was cut below it */
                    continue;
                }
                if (base >= start && base > snap)
                    snap = base;
            } else if (strcmp(ext, ".txnindex") == 0) {
                if (load_file(p->dir, e->d_name, &data) == 0 &&
                    pstate_txnindex_decode(ps, data.data, data.len) < 0)
                    LOG_WARN("txn", "%s/%s: unknown version, ignored", p->dir, e->d_name);
            }
        }
        closedir(d);
        /* Aborts whose marker was cut from the log are no longer facts. */
        pstate_aborted_t *keep = NULL;
        int n = pstate_aborted_count(ps);
        if (n > 0 && (keep = malloc((size_t)n * sizeof(*keep))) != NULL) {
            int all = pstate_aborted_range(ps, INT64_MIN, INT64_MAX, keep, n);
            producer_state_t *fresh = pstate_new();
            if (fresh) {
                for (int i = 0; i < all && i < n; i++)
                    if (keep[i].last_offset < end)
                        pstate_add_aborted(fresh, &keep[i]);
                pstate_free(ps);
                ps = fresh;
            }
            free(keep);
        }
        if (snap >= 0) {
            char name[64];
            snprintf(name, sizeof(name), "%020" PRId64 ".snapshot", snap);
            if (load_file(p->dir, name, &data) != 0 || pstate_snapshot_decode(ps, data.data, data.len) != 0) {
                LOG_WARN("txn", "%s/%s unreadable: rebuilding producer state from the log", p->dir, name);
                producer_state_t *fresh = pstate_new();
                if (fresh) {
                    pstate_aborted_t *all = NULL;
                    int na = pstate_aborted_count(ps);
                    if (na > 0 && (all = malloc((size_t)na * sizeof(*all))) != NULL) {
                        pstate_aborted_range(ps, INT64_MIN, INT64_MAX, all, na);
                        for (int i = 0; i < na; i++)
                            pstate_add_aborted(fresh, &all[i]);
                        free(all);
                    }
                    pstate_free(ps);
                    ps = fresh;
                }
                snap = -1;
            }
        }
        buf_free(&data);
    }
    int64_t from = snap >= 0 ? snap : start;
    if (from < end) {
        if (replay_log(p, ps, from) != 0)
            LOG_WARN("txn", "%s: producer state rebuilt only up to a read error", p->dir);
        LOG_INFO("txn", "%s: producer state loaded (%s %" PRId64 ", replayed to %" PRId64 "), %d producers",
                 p->dir, snap >= 0 ? "snapshot" : "log start", from, end, pstate_producer_count(ps));
    }
    return ps;
}

producer_state_t *ptxn_state(partition_t *p)
{
    if (p->pstate == NULL)
        p->pstate = load_state(p);
    return p->pstate;
}

int ptxn_produce_check(partition_t *p, const uint8_t *batch, int64_t *dup_base)
{
    int64_t pid = rb_producer_id(batch);
    if (pid < 0)
        return 0;
    producer_state_t *ps = ptxn_state(p);
    if (ps == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    pstate_batch_t dup;
    int rc = pstate_check(ps, pid, rb_producer_epoch(batch), rb_base_sequence(batch), rb_records_count(batch),
                          &dup);
    if (rc == PSTATE_DUPLICATE)
        *dup_base = dup.first_offset;
    return rc;
}

void ptxn_produce_done(partition_t *p, const uint8_t *batch, int64_t now_ms)
{
    int64_t pid = rb_producer_id(batch);
    if (pid < 0)
        return;
    producer_state_t *ps = ptxn_state(p);
    if (ps == NULL)
        return;
    if (pstate_update(ps, pid, rb_producer_epoch(batch), rb_base_sequence(batch), rb_records_count(batch),
                      rb_base_offset(batch), rb_last_offset(batch), now_ms,
                      (rb_attributes(batch) & RB_ATTR_TRANSACTIONAL) != 0) != 0)
        LOG_ERROR("txn", "out of memory recording producer %" PRId64 " on %s", pid, p->dir);
}

int16_t ptxn_write_marker(topics_t *t, partition_t *p, int64_t producer_id, int16_t epoch, bool commit,
                          int32_t coordinator_epoch, int64_t now_ms)
{
    producer_state_t *ps = ptxn_state(p);
    if (ps == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    buf_t out;
    buf_init(&out);
    rb_builder_t b;
    rb_builder_init(&b, &out, 0, 0, now_ms);
    rb_builder_set_producer(&b, producer_id, epoch, -1, true);
    rb_builder_set_control(&b);
    uint8_t key[4], val[6];
    be_put16(key, 0);
    be_put16(key + 2, commit ? 1 : 0);
    be_put16(val, 0);
    be_put32(val + 2, (uint32_t)coordinator_epoch);
    if (rb_builder_add(&b, now_ms, -1, key, 4, val, 6, 0, NULL, NULL, NULL, NULL) != 0 ||
        rb_builder_finish(&b) != 0 || out.oom) {
        buf_free(&out);
        return KERR_UNKNOWN_SERVER_ERROR;
    }
    int64_t active = log_active_base_offset(p->log);
    int64_t first, next;
    int rc = partition_append(t, p, out.data, out.len, now_ms, &first, &next);
    buf_free(&out);
    if (rc != 0) {
        LOG_ERROR("txn", "writing a %s marker to %s failed: %s", commit ? "commit" : "abort", p->dir,
                  log_rc_str(rc));
        return KERR_KAFKA_STORAGE_ERROR;
    }
    /* A roll during the append puts the marker in a new segment. */
    if (log_active_base_offset(p->log) != active)
        active = log_active_base_offset(p->log);
    pstate_aborted_t a;
    if (pstate_apply_marker(ps, producer_id, epoch, commit, coordinator_epoch, first, now_ms, &a) == 1) {
        pstate_add_aborted(ps, &a);
        txnindex_append(p->dir, active, &a);
    }
    return KERR_NONE;
}

int64_t ptxn_last_stable_offset(partition_t *p)
{
    int64_t end = log_end_offset(p->log);
    producer_state_t *ps = p->pstate;
    if (ps == NULL)
        ps = ptxn_state(p);
    if (ps == NULL)
        return end;
    int64_t first = pstate_first_unstable_offset(ps);
    return first >= 0 && first < end ? first : end;
}

int ptxn_aborted(partition_t *p, int64_t from, int64_t to, pstate_aborted_t *out, int cap)
{
    producer_state_t *ps = ptxn_state(p);
    if (ps == NULL)
        return 0;
    return pstate_aborted_range(ps, from, to, out, cap);
}

int32_t ptxn_trim_region(int fd, int64_t pos, int32_t len, int64_t upper)
{
    int64_t at = pos, stop = pos + len;
    uint8_t hdr[RB_HEADER_SIZE];
    while (at + RB_HEADER_SIZE <= stop) {
        if (pread_full(fd, hdr, RB_HEADER_SIZE, at) != 0)
            return -1;
        if (rb_base_offset(hdr) >= upper)
            break;
        int64_t size = rb_total_size(hdr);
        if (size < RB_HEADER_SIZE || at + size > stop)
            break;
        at += size;
    }
    return (int32_t)(at - pos);
}

static void snapshot_partition(partition_t *p)
{
    if (p == NULL || p->pstate == NULL || p->log == NULL)
        return;
    int64_t end = log_end_offset(p->log);
    char path[4096];
    if (segment_path(path, sizeof(path), p->dir, end, ".snapshot") != 0)
        return;
    buf_t b;
    buf_init(&b);
    pstate_snapshot_encode(p->pstate, &b);
    if (b.oom || fs_write_atomic(path, b.data, b.len) != 0) {
        LOG_ERROR("txn", "cannot write %s", path);
        buf_free(&b);
        return;
    }
    buf_free(&b);
    DIR *d = opendir(p->dir);
    if (d == NULL)
        return;
    int64_t start = log_start_offset(p->log);
    buf_init(&b);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t base;
        const char *ext;
        if (!segment_parse_name(e->d_name, &base, &ext))
            continue;
        if (strcmp(ext, ".snapshot") == 0 && base != end) {
            unlink_name(p->dir, e->d_name);
        } else if (strcmp(ext, ".txnindex") == 0 && base < start) {
            /* Retention took its segment: it goes once none of its aborts reaches the log start. */
            producer_state_t *tmp = pstate_new();
            if (tmp && load_file(p->dir, e->d_name, &b) == 0 && pstate_txnindex_decode(tmp, b.data, b.len) >= 0 &&
                pstate_aborted_range(tmp, start, INT64_MAX, NULL, 0) == 0)
                unlink_name(p->dir, e->d_name);
            pstate_free(tmp);
        }
    }
    closedir(d);
    buf_free(&b);
}

static void snapshot_topic(void *arg, topic_t *tp)
{
    (void)arg;
    for (int32_t i = 0; i < tp->npartitions; i++)
        snapshot_partition(topics_partition(tp, i));
}

typedef struct expire_ctx {
    int64_t before;
    int n;
} expire_ctx_t;

static void expire_topic(void *arg, topic_t *tp)
{
    expire_ctx_t *c = arg;
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = topics_partition(tp, i);
        if (p && p->pstate)
            c->n += pstate_expire(p->pstate, c->before);
    }
}

int ptxn_expire_producers(topics_t *t, int64_t now_ms, int64_t max_idle_ms)
{
    expire_ctx_t c = {now_ms - max_idle_ms, 0};
    if (t)
        topics_foreach(t, expire_topic, &c);
    if (c.n)
        LOG_INFO("txn", "forgot %d producer ids idle for more than %" PRId64 " ms", c.n, max_idle_ms);
    return c.n;
}

void ptxn_snapshot_all(topics_t *t)
{
    if (t)
        topics_foreach(t, snapshot_topic, NULL);
}
