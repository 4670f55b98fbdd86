/*
 * log.c - a partition's log: an ordered array of segments in `<log.dir>/<topic>-<partition>/`,
 * the last of which (the active segment) takes appends. Layouts: segment.c (.log) and index.c
 * (.index, .timeindex).
 *
 * Open/recovery: list the `<20 digits>.log` files, drop leftovers (`*.deleted`, `*.cleaned`,
 * `*.swap`, indexes without a .log), then per segment in offset order: a segment whose data all
 * lies below the recovery point is loaded from its sizes and last index entries (segment_load);
 * one extending past it, or whose indexes do not check out, is scanned and rebuilt
 * (segment_recover). A torn tail found past the recovery point ends the log there: later
 * segments are deleted. Only the active segment (once used: files open lazily after log_open)
 * and the last older segment read keep their files open, so an idle partition costs no
 * descriptors until it is read or written.
 *
 * Retention (log_apply_retention) and compaction swaps (log_swap_cleaned) remove whole closed
 * segments. The compaction swap's crash-safe protocol on disk:
 *   1. the cleaner thread writes and fsyncs <B>.log.cleaned (+ .index.cleaned, .timeindex.cleaned);
 *   2. rename the three to .swap, the .log last: <B>.log.swap existing = committed;
 *   3. delete the replaced segments other than <B>;
 *   4. rename the .swap files to their plain names, the .log last (replacing the old <B>.log).
 * On open, a <B>.log.swap means steps 3-4 may be unfinished: every segment with a base in
 * (B, last offset of the swap] is deleted, the swap becomes <B>.log and its indexes are rebuilt.
 */
#include "storage/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/logger.h"
#include "protocol/record_batch.h"
#include "storage/segment.h"

struct log {
    char *dir;
    log_config_t cfg;
    segment_t *segs; /* sorted by base offset; the last one is active and always open */
    int nsegs, cap;
    int64_t start_offset;
    int64_t recovery_point;
    int cached;     /* index of an older segment whose files are open, or -1 */
    bool dir_dirty; /* segments created or deleted since the last directory fsync */
    uint64_t dir_gen; /* counts dir_dirty settings: an off-thread flush clears only its own */
    int64_t cleaner_checkpoint; /* first dirty offset for the cleaner, -1 unknown */
    int64_t cleaner_horizon;    /* earliest pending tombstone delete horizon, -1 none */
    struct log *lru_prev, *lru_next; /* in the open-files LRU while any segment is open */
    bool in_lru;
};

static void mark_dir_dirty(log_t *l)
{
    l->dir_dirty = true;
    l->dir_gen++;
}


/*
 * Open files are bounded process-wide: logs holding open segment files sit in
 * an LRU list, and when more than lru_cap logs hold files the least recently
 * used one closes them (they reopen at its next use). So tens of thousands of
 * busy partitions never exhaust RLIMIT_NOFILE. @locality: the thread that owns
 * the logs (the event loop); the cleaner thread opens its own descriptors.
 */
static struct log *lru_head, *lru_tail; /* head = most recently used */
static int lru_count, lru_cap;

static void lru_unlink(struct log *l)
{
    if (!l->in_lru)
        return;
    if (l->lru_prev)
        l->lru_prev->lru_next = l->lru_next;
    else
        lru_head = l->lru_next;
    if (l->lru_next)
        l->lru_next->lru_prev = l->lru_prev;
    else
        lru_tail = l->lru_prev;
    l->lru_prev = l->lru_next = NULL;
    l->in_lru = false;
    lru_count--;
}

static int lru_capacity(void)
{
    if (lru_cap == 0) {
        /* A log holds up to 6 descriptors (active + one older segment, 3 files each);
         * leave room for sockets and everything else. */
        struct rlimit rl;
        rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
        if (n == RLIM_INFINITY || n > 1 << 20)
            n = 1 << 20;
        lru_cap = (int)(n > 2048 ? (n - 1024) / 6 : n / 12);
        if (lru_cap < 16)
            lru_cap = 16;
    }
    return lru_cap;
}

void log_set_open_files_limit(int max_logs) { lru_cap = max_logs; }

static void lru_touch(struct log *l)
{
    if (lru_head == l)
        return;
    lru_unlink(l);
    l->lru_next = lru_head;
    if (lru_head)
        lru_head->lru_prev = l;
    lru_head = l;
    if (lru_tail == NULL)
        lru_tail = l;
    l->in_lru = true;
    lru_count++;
    while (lru_count > lru_capacity() && lru_tail && lru_tail != l) {
        struct log *victim = lru_tail;
        lru_unlink(victim);
        for (int i = 0; i < victim->nsegs; i++)
            segment_close_files(&victim->segs[i]);
        victim->cached = -1;
    }
}

const char *log_rc_str(int rc)
{
    switch (rc) {
    case LOG_OK: return "ok";
    case LOG_ERR_IO: return "I/O error";
    case LOG_ERR_OUT_OF_RANGE: return "offset out of range";
    case LOG_ERR_CORRUPT: return "corrupt data";
    case LOG_ERR_INVALID: return "invalid argument";
    default: return "unknown error";
    }
}

void log_config_default(log_config_t *cfg)
{
    cfg->segment_bytes = 1073741824;
    cfg->segment_ms = 168LL * 3600 * 1000;
    cfg->index_interval_bytes = 4096;
    cfg->cleanup_delete = true;
    cfg->cleanup_compact = false;
    cfg->retention_ms = 168LL * 3600 * 1000;
    cfg->retention_bytes = -1;
    cfg->delete_retention_ms = 86400000;
    cfg->min_compaction_lag_ms = 0;
    cfg->max_compaction_lag_ms = INT64_MAX;
    cfg->min_cleanable_ratio = 0.5;
}

static void config_sanitize(log_config_t *dst, const log_config_t *src)
{
    *dst = *src;
    if (dst->segment_bytes < 64)
        dst->segment_bytes = 64;
    if (dst->segment_ms < 1)
        dst->segment_ms = 1;
    if (dst->index_interval_bytes < 0)
        dst->index_interval_bytes = 0;
    if (dst->delete_retention_ms < 0)
        dst->delete_retention_ms = 0;
    if (dst->min_compaction_lag_ms < 0)
        dst->min_compaction_lag_ms = 0;
    if (dst->max_compaction_lag_ms < 1)
        dst->max_compaction_lag_ms = 1;
    if (!(dst->min_cleanable_ratio >= 0.0)) /* also catches NaN */
        dst->min_cleanable_ratio = 0.0;
    if (dst->min_cleanable_ratio > 1.0)
        dst->min_cleanable_ratio = 1.0;
}

void log_set_config(log_t *l, const log_config_t *cfg)
{
    config_sanitize(&l->cfg, cfg);
}

static segment_t *active(const log_t *l)
{
    return &l->segs[l->nsegs - 1];
}

int64_t log_start_offset(const log_t *l) { return l->start_offset; }
int64_t log_end_offset(const log_t *l) { return active(l)->next_offset; }
int log_segment_count(const log_t *l) { return l->nsegs; }
int64_t log_active_base_offset(const log_t *l) { return active(l)->base_offset; }
int64_t log_recovery_point(const log_t *l) { return l->recovery_point; }

int64_t log_size_bytes(const log_t *l)
{
    int64_t sum = 0;
    for (int i = 0; i < l->nsegs; i++)
        sum += l->segs[i].size;
    return sum;
}

static int segs_push(log_t *l, const segment_t *s)
{
    if (l->nsegs == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 4;
        segment_t *n = realloc(l->segs, (size_t)ncap * sizeof(*n));
        if (!n)
            return LOG_ERR_IO;
        l->segs = n;
        l->cap = ncap;
    }
    l->segs[l->nsegs++] = *s;
    return LOG_OK;
}

/* Index of the last segment whose base is <= offset (0 when offset precedes them all). */
static int find_seg(const log_t *l, int64_t offset)
{
    int lo = 0, hi = l->nsegs - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (l->segs[mid].base_offset <= offset)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Makes segment k's files open; an older segment displaces the previously cached one. The
 * active segment's files open at its first use after log_open and then stay open. */
static int log_use(log_t *l, int k)
{
    segment_t *s = &l->segs[k];
    lru_touch(l);
    if (segment_is_open(s))
        return LOG_OK;
    bool is_active = k == l->nsegs - 1;
    if (!is_active) {
        if (l->cached >= 0 && l->cached != k && l->cached != l->nsegs - 1)
            segment_close_files(&l->segs[l->cached]);
        l->cached = -1;
    }
    int rc = segment_open_files(l->dir, s);
    if (rc != LOG_OK)
        return rc;
    if (!is_active)
        l->cached = k;
    return LOG_OK;
}

/* "<topic>-<partition>" split at its last '-' for log lines: the partition directory's name. */
static void topic_partition(const log_t *l, const char **topic, int *topic_len,
                            const char **partition)
{
    const char *name = strrchr(l->dir, '/');
    name = name ? name + 1 : l->dir;
    const char *dash = strrchr(name, '-');
    *topic = name;
    *topic_len = dash ? (int)(dash - name) : (int)strlen(name);
    *partition = dash ? dash + 1 : "?";
}

static void delete_segment(log_t *l, segment_t *s, const char *why)
{
    const char *topic, *partition;
    int tlen;
    topic_partition(l, &topic, &tlen, &partition);
    segment_close_files(s);
    LOG_INFO("storage", "topic %.*s partition %s: deleting segment %020" PRId64 " (%s, %" PRId64
             " bytes) in %s", tlen, topic, partition, s->base_offset, why, s->size, l->dir);
    (void)segment_delete_files(l->dir, s->base_offset);
    mark_dir_dirty(l);
}

/* Forgets the first n segments (already deleted). */
static void drop_front(log_t *l, int n)
{
    if (n <= 0)
        return;
    memmove(l->segs, l->segs + n, (size_t)(l->nsegs - n) * sizeof(*l->segs));
    l->nsegs -= n;
    l->cached = l->cached < n ? -1 : l->cached - n;
}

static int sync_dir(const char *dir)
{
    int fd;
    do {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd == -1 && errno == EINTR);
    if (fd == -1)
        return LOG_ERR_IO;
    int rc = LOG_OK;
    while (fsync(fd) == -1) {
        if (errno != EINTR) {
            rc = LOG_ERR_IO;
            break;
        }
    }
    (void)close(fd);
    return rc;
}

/* ---------------------------------------------------------------- open / close */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void unlink_in(const char *dir, const char *name, const char *why)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return;
    LOG_INFO("storage", "%s: removing %s (%s)", dir, name, why);
    if (unlink(path) == -1 && errno != ENOENT)
        LOG_WARN("storage", "unlink %s: %s", path, strerror(errno));
}

static void unlink_quiet(const char *dir, int64_t base, const char *ext)
{
    char path[4096];
    if (segment_path(path, sizeof(path), dir, base, ext) == LOG_OK && unlink(path) == -1 &&
        errno != ENOENT)
        LOG_WARN("storage", "unlink %s: %s", path, strerror(errno));
}

/* Finishes the compaction swap of <base>.log.swap (see the top of this file). */
static int complete_swap(const char *dir, int64_t base)
{
    char path[4096];
    if (segment_path(path, sizeof(path), dir, base, ".log.swap") != LOG_OK)
        return LOG_ERR_INVALID;
    int64_t last;
    if (segment_file_last_offset(path, &last) != LOG_OK) {
        LOG_ERROR("storage", "%s: cannot read %s: %s", dir, path, strerror(errno));
        return LOG_ERR_IO;
    }
    LOG_WARN("storage", "%s: completing the interrupted compaction swap of segment %020" PRId64
             " (offsets up to %" PRId64 ")", dir, base, last);
    DIR *d = opendir(dir);
    if (!d)
        return LOG_ERR_IO;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t b;
        const char *ext;
        if (segment_parse_name(e->d_name, &b, &ext) && strcmp(ext, ".log") == 0 && b > base &&
            b <= last) {
            LOG_WARN("storage", "%s: deleting segment %020" PRId64 ", replaced by the swap", dir, b);
            (void)segment_delete_files(dir, b);
        }
    }
    closedir(d);
    /* The indexes are rebuilt from the new .log when it is loaded. */
    unlink_quiet(dir, base, ".index");
    unlink_quiet(dir, base, ".timeindex");
    unlink_quiet(dir, base, ".index.swap");
    unlink_quiet(dir, base, ".timeindex.swap");
    char final[4096];
    if (segment_path(final, sizeof(final), dir, base, ".log") != LOG_OK)
        return LOG_ERR_INVALID;
    if (rename(path, final) == -1) {
        LOG_ERROR("storage", "rename %s: %s", path, strerror(errno));
        return LOG_ERR_IO;
    }
    return LOG_OK;
}

static int complete_swaps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        LOG_ERROR("storage", "opendir %s: %s", dir, strerror(errno));
        return LOG_ERR_IO;
    }
    int64_t swaps[16];
    int n = 0;
    bool more = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t base;
        const char *ext;
        if (segment_parse_name(e->d_name, &base, &ext) && strcmp(ext, ".log.swap") == 0) {
            if (n < 16)
                swaps[n++] = base;
            else
                more = true;
        }
    }
    closedir(d);
    if (n > 1)
        qsort(swaps, (size_t)n, sizeof(*swaps), cmp_i64);
    for (int i = 0; i < n; i++) {
        int rc = complete_swap(dir, swaps[i]);
        if (rc != LOG_OK)
            return rc;
    }
    return more ? complete_swaps(dir) : LOG_OK;
}

/* Lists the segment base offsets (sorted) and removes leftover files. */
static int list_segments(const char *dir, int64_t **bases_out, int *n_out)
{
    int src = complete_swaps(dir);
    if (src != LOG_OK)
        return src;
    DIR *d = opendir(dir);
    if (!d) {
        LOG_ERROR("storage", "opendir %s: %s", dir, strerror(errno));
        return LOG_ERR_IO;
    }
    int64_t *bases = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t base;
        const char *ext;
        if (has_suffix(e->d_name, ".deleted") || has_suffix(e->d_name, ".cleaned") ||
            has_suffix(e->d_name, ".swap")) {
            unlink_in(dir, e->d_name, "leftover");
            continue;
        }
        if (!segment_parse_name(e->d_name, &base, &ext) || strcmp(ext, ".log") != 0)
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 8;
            int64_t *nb = realloc(bases, (size_t)ncap * sizeof(*nb));
            if (!nb) {
                free(bases);
                closedir(d);
                return LOG_ERR_IO;
            }
            bases = nb;
            cap = ncap;
        }
        bases[n++] = base;
    }
    if (n > 1)
        qsort(bases, (size_t)n, sizeof(*bases), cmp_i64);
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        int64_t base;
        const char *ext;
        if (!segment_parse_name(e->d_name, &base, &ext) ||
            (strcmp(ext, ".index") != 0 && strcmp(ext, ".timeindex") != 0))
            continue;
        if (!bsearch(&base, bases, (size_t)n, sizeof(*bases), cmp_i64))
            unlink_in(dir, e->d_name, "index without a .log");
    }
    closedir(d);
    *bases_out = bases;
    *n_out = n;
    return LOG_OK;
}

static void free_log(log_t *l)
{
    lru_unlink(l);
    for (int i = 0; i < l->nsegs; i++)
        segment_close_files(&l->segs[i]);
    free(l->segs);
    free(l->dir);
    free(l);
}

/* Loads segment k of n (bases sorted); may shorten *n when recovery cuts the log. */
static int open_segment(log_t *l, const int64_t *bases, int k, int *n, int64_t rp)
{
    int64_t base = bases[k];
    int64_t next_base = k + 1 < *n ? bases[k + 1] : -1;
    bool unflushed = next_base < 0 || next_base > rp;
    segment_t s;
    bool scan = next_base >= 0 && next_base > rp;
    if (!scan) {
        int rc = segment_load(l->dir, base, next_base, &s);
        if (rc == LOG_ERR_IO)
            return rc;
        if (rc == LOG_ERR_CORRUPT) {
            scan = true;
        } else if (next_base < 0 && s.next_offset > rp) {
            segment_close_files(&s);
            scan = true;
        }
    }
    if (scan) {
        int64_t dropped;
        int rc = segment_recover(l->dir, base, l->cfg.index_interval_bytes, &s, &dropped);
        if (rc != LOG_OK)
            return rc;
        if (dropped > 0 && unflushed && k + 1 < *n) {
            for (int j = k + 1; j < *n; j++) {
                LOG_WARN("storage", "%s: deleting segment %020" PRId64 " after the truncated one",
                         l->dir, bases[j]);
                (void)segment_delete_files(l->dir, bases[j]);
            }
            *n = k + 1;
            mark_dir_dirty(l);
        }
    }
    /* A rebuilt older segment gets the final time index entry a roll would have written. */
    if (k + 1 < *n && scan && segment_seal(&s) != LOG_OK) {
        segment_close_files(&s);
        return LOG_ERR_IO;
    }
    /* Every segment, the active one included, opens its files lazily: an idle partition holds
     * no descriptors, so many partitions start fast and within the open-file limit. */
    segment_close_files(&s);
    if (segs_push(l, &s) != LOG_OK) {
        segment_close_files(&s);
        return LOG_ERR_IO;
    }
    return LOG_OK;
}

int log_open(const char *dir, const log_config_t *cfg, int64_t recovery_point,
             int64_t log_start_offset, log_t **out)
{
    *out = NULL;
    if (!dir || !*dir || !cfg)
        return LOG_ERR_INVALID;
    log_t *l = calloc(1, sizeof(*l));
    if (!l)
        return LOG_ERR_IO;
    l->dir = strdup(dir);
    l->cached = -1;
    l->cleaner_checkpoint = -1;
    l->cleaner_horizon = -1;
    if (!l->dir) {
        free(l);
        return LOG_ERR_IO;
    }
    config_sanitize(&l->cfg, cfg);
    if (mkdir(dir, 0755) == -1) {
        if (errno != EEXIST) {
            LOG_ERROR("storage", "mkdir %s: %s", dir, strerror(errno));
            free_log(l);
            return LOG_ERR_IO;
        }
    } else {
        mark_dir_dirty(l);
    }
    int64_t *bases;
    int n;
    int rc = list_segments(dir, &bases, &n);
    if (rc != LOG_OK) {
        free_log(l);
        return rc;
    }
    int64_t rp = recovery_point < 0 ? 0 : recovery_point;
    for (int k = 0; k < n && rc == LOG_OK; k++)
        rc = open_segment(l, bases, k, &n, rp);
    free(bases);
    if (rc == LOG_OK && l->nsegs == 0) {
        segment_t s;
        rc = segment_create(dir, log_start_offset > 0 ? log_start_offset : 0, &s);
        if (rc == LOG_OK)
            segment_close_files(&s); /* opened at first use, like the others */
        if (rc == LOG_OK && segs_push(l, &s) != LOG_OK) {
            segment_close_files(&s);
            rc = LOG_ERR_IO;
        }
        mark_dir_dirty(l);
    }
    if (rc != LOG_OK) {
        free_log(l);
        return rc;
    }
    int64_t end = log_end_offset(l);
    l->start_offset = log_start_offset;
    if (l->start_offset < l->segs[0].base_offset)
        l->start_offset = l->segs[0].base_offset;
    if (l->start_offset > end)
        l->start_offset = end;
    l->recovery_point = rp < end ? rp : end;
    LOG_DEBUG("storage", "%s: opened, %d segments, offsets %" PRId64 "..%" PRId64, dir, l->nsegs,
              l->start_offset, end);
    *out = l;
    return LOG_OK;
}

void log_close(log_t *l)
{
    if (!l)
        return;
    segment_t *a = active(l);
    bool need_seal = a->max_timestamp > a->tidx_last_ts && a->max_ts_offset >= a->base_offset;
    if (need_seal && log_use(l, l->nsegs - 1) != LOG_OK)
        LOG_WARN("storage", "%s: cannot open the active segment to seal it", l->dir);
    else if (segment_seal(a) != LOG_OK)
        LOG_WARN("storage", "%s: could not write the final time index entry: %s", l->dir,
                 strerror(errno));
    free_log(l);
}

int log_remove(log_t *l)
{
    if (!l)
        return LOG_OK;
    lru_unlink(l);
    for (int i = 0; i < l->nsegs; i++)
        segment_close_files(&l->segs[i]);
    int rc = LOG_OK;
    DIR *d = opendir(l->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4096];
            int n = snprintf(path, sizeof(path), "%s/%s", l->dir, e->d_name);
            if (n < 0 || (size_t)n >= sizeof(path) || (unlink(path) == -1 && errno != ENOENT)) {
                LOG_ERROR("storage", "%s: cannot remove %s", l->dir, e->d_name);
                rc = LOG_ERR_IO;
            }
        }
        closedir(d);
    } else if (errno != ENOENT) {
        rc = LOG_ERR_IO;
    }
    if (rc == LOG_OK && rmdir(l->dir) == -1 && errno != ENOENT) {
        LOG_ERROR("storage", "rmdir %s: %s", l->dir, strerror(errno));
        rc = LOG_ERR_IO;
    }
    if (rc == LOG_OK)
        LOG_INFO("storage", "%s: deleted", l->dir);
    free_log(l);
    return rc;
}

/* ---------------------------------------------------------------- append */

static int roll(log_t *l)
{
    segment_t *old = active(l);
    int rc = segment_seal(old);
    if (rc != LOG_OK)
        return rc;
    segment_t s;
    rc = segment_create(l->dir, old->next_offset, &s);
    if (rc != LOG_OK)
        return rc;
    int old_k = l->nsegs - 1;
    if (segs_push(l, &s) != LOG_OK) {
        segment_close_files(&s);
        (void)segment_delete_files(l->dir, s.base_offset);
        return LOG_ERR_IO;
    }
    mark_dir_dirty(l);
    /* The segment just closed for appends is the likeliest to be read next: keep it cached. */
    if (l->cached >= 0)
        segment_close_files(&l->segs[l->cached]);
    l->cached = old_k;
    LOG_INFO("storage", "%s: rolled new segment %020" PRId64, l->dir, s.base_offset);
    return LOG_OK;
}

int log_append(log_t *l, uint8_t *batches, size_t len, int32_t leader_epoch, int64_t now_ms,
               int64_t *first_offset, int64_t *next_offset)
{
    int64_t count;
    if (!batches || len > INT32_MAX || segment_check_batches(batches, len, &count) != LOG_OK)
        return LOG_ERR_INVALID;
    if (count - 1 > INT32_MAX) /* could not fit one segment's relative offsets */
        return LOG_ERR_INVALID;
    int urc = log_use(l, l->nsegs - 1);
    if (urc != LOG_OK)
        return urc;
    segment_t *s = active(l);
    int64_t grown = s->size + (int64_t)len;
    bool full = s->size > 0 && (grown > l->cfg.segment_bytes || grown > INT32_MAX);
    bool old = s->size > 0 && s->first_append_ms >= 0 &&
               now_ms - s->first_append_ms > l->cfg.segment_ms;
    bool rel_overflow = s->next_offset + count - 1 - s->base_offset > INT32_MAX;
    if (full || old || rel_overflow) {
        int rc = roll(l);
        if (rc != LOG_OK)
            return rc;
        s = active(l);
    }
    int64_t first = s->next_offset;
    int rc = segment_append(s, batches, len, leader_epoch, l->cfg.index_interval_bytes, now_ms);
    if (rc != LOG_OK)
        return rc;
    if (first_offset)
        *first_offset = first;
    if (next_offset)
        *next_offset = s->next_offset;
    return LOG_OK;
}

int log_append_replica(log_t *l, const uint8_t *batches, size_t len, int64_t now_ms, int64_t *next_offset)
{
    int64_t count;
    if (!batches || len == 0 || len > INT32_MAX || segment_check_batches(batches, len, &count) != LOG_OK)
        return LOG_ERR_INVALID;
    int urc = log_use(l, l->nsegs - 1);
    if (urc != LOG_OK)
        return urc;
    segment_t *s = active(l);
    int64_t last = rb_last_offset(batches);
    for (size_t pos = 0; pos < len; pos += (size_t)rb_total_size(batches + pos))
        last = rb_last_offset(batches + pos);
    int64_t grown = s->size + (int64_t)len;
    bool full = s->size > 0 && (grown > l->cfg.segment_bytes || grown > INT32_MAX);
    bool old = s->size > 0 && s->first_append_ms >= 0 && now_ms - s->first_append_ms > l->cfg.segment_ms;
    bool rel_overflow = last - s->base_offset > INT32_MAX;
    if (full || old || rel_overflow) {
        int rc = roll(l);
        if (rc != LOG_OK)
            return rc;
        s = active(l);
    }
    bool first_append = s->size == 0;
    int rc = segment_append_as_is(s, batches, len, l->cfg.index_interval_bytes);
    if (rc != LOG_OK)
        return rc;
    if (first_append)
        s->first_append_ms = now_ms;
    if (next_offset)
        *next_offset = s->next_offset;
    return LOG_OK;
}

/* ---------------------------------------------------------------- reads */

static void region(log_read_t *out, const segment_t *s, const segment_batch_t *b, int64_t len)
{
    if (len <= 0) {
        out->fd = -1;
        out->position = 0;
        out->len = 0;
        out->first_batch_base = -1;
        return;
    }
    out->fd = s->log_fd;
    out->position = b->position;
    out->len = (int32_t)len;
    out->first_batch_base = b->base_offset;
}

int log_read(log_t *l, int64_t offset, int32_t max_bytes, bool min_one, log_read_t *out)
{
    region(out, NULL, NULL, 0);
    if (offset < l->start_offset || offset > log_end_offset(l))
        return LOG_ERR_OUT_OF_RANGE;
    if (offset == log_end_offset(l))
        return LOG_OK;
    for (int k = find_seg(l, offset); k < l->nsegs; k++) {
        int rc = log_use(l, k);
        if (rc != LOG_OK)
            return rc;
        segment_batch_t b;
        int64_t len;
        int r = segment_read(&l->segs[k], offset, max_bytes, min_one, &b, &len);
        if (r < 0)
            return r;
        if (r == 1) {
            region(out, &l->segs[k], &b, len);
            return LOG_OK;
        }
    }
    return LOG_OK;
}

int log_find_timestamp(log_t *l, int64_t ts, log_read_t *out)
{
    region(out, NULL, NULL, 0);
    for (int k = find_seg(l, l->start_offset); k < l->nsegs; k++) {
        segment_t *s = &l->segs[k];
        if (s->size == 0 || s->max_timestamp < ts)
            continue;
        int rc = log_use(l, k);
        if (rc != LOG_OK)
            return rc;
        segment_batch_t b;
        int r = segment_find_timestamp(s, ts, l->start_offset, &b);
        if (r < 0)
            return r;
        if (r == 1) {
            region(out, s, &b, b.size);
            return 1;
        }
    }
    return 0;
}

int log_max_timestamp(log_t *l, int64_t *ts, int64_t *offset, log_read_t *batch)
{
    region(batch, NULL, NULL, 0);
    *ts = *offset = -1;
    int k0 = find_seg(l, l->start_offset), best = -1;
    int64_t best_ts = -1, best_off = -1;
    for (int k = k0; k < l->nsegs; k++) {
        segment_t *s = &l->segs[k];
        if (s->size == 0)
            continue;
        int64_t sts = s->max_timestamp, soff = s->max_ts_offset;
        if (k == k0 && soff < l->start_offset) {
            /* The maximum was in records below the log start: find the maximum of the rest. */
            int rc = log_use(l, k);
            if (rc != LOG_OK)
                return rc;
            int r = segment_max_timestamp_from(s, l->start_offset, &sts, &soff);
            if (r < 0)
                return r;
            if (r == 0)
                continue;
        }
        if (soff >= 0 && (best < 0 || sts > best_ts)) {
            best = k;
            best_ts = sts;
            best_off = soff;
        }
    }
    if (best < 0)
        return 0;
    int rc = log_use(l, best);
    if (rc != LOG_OK)
        return rc;
    segment_batch_t b;
    int r = segment_locate(&l->segs[best], best_off, &b);
    if (r <= 0)
        return r < 0 ? r : LOG_ERR_CORRUPT;
    region(batch, &l->segs[best], &b, b.size);
    *ts = best_ts;
    *offset = best_off;
    return 1;
}

/* ---------------------------------------------------------------- deletion, truncation, flush */

int log_delete_records(log_t *l, int64_t offset)
{
    if (offset < 0 || offset > log_end_offset(l))
        return LOG_ERR_OUT_OF_RANGE;
    if (offset <= l->start_offset)
        return LOG_OK;
    l->start_offset = offset;
    int n = 0;
    while (n < l->nsegs - 1 && l->segs[n + 1].base_offset <= offset)
        n++;
    char why[96];
    snprintf(why, sizeof(why), "DeleteRecords: below the log start offset %" PRId64, offset);
    for (int i = 0; i < n; i++)
        delete_segment(l, &l->segs[i], why);
    drop_front(l, n);
    return LOG_OK;
}

/* Empties the log: one new segment at `offset`. */
static int restart_at(log_t *l, int64_t offset)
{
    /* Create the new segment first so that a failure leaves the log as it was. */
    segment_t s;
    int rc = segment_create(l->dir, offset, &s);
    if (rc != LOG_OK)
        return rc;
    for (int i = 0; i < l->nsegs; i++)
        delete_segment(l, &l->segs[i], "truncated away");
    l->segs[0] = s;
    l->nsegs = 1;
    l->cached = -1;
    l->start_offset = offset;
    l->recovery_point = offset;
    mark_dir_dirty(l);
    return LOG_OK;
}

int log_restart_at(log_t *l, int64_t offset, int64_t *new_end)
{
    if (offset < 0)
        return LOG_ERR_OUT_OF_RANGE;
    int rc = restart_at(l, offset);
    if (rc != LOG_OK)
        return rc;
    LOG_INFO("storage", "%s: emptied; the log now starts at offset %" PRId64, l->dir, offset);
    *new_end = offset;
    return LOG_OK;
}

int log_truncate_to(log_t *l, int64_t offset, int64_t *new_end)
{
    if (offset < 0)
        return LOG_ERR_OUT_OF_RANGE;
    if (offset >= log_end_offset(l)) {
        *new_end = log_end_offset(l);
        return LOG_OK;
    }
    if (offset < l->segs[0].base_offset) {
        int rc = restart_at(l, offset);
        if (rc != LOG_OK)
            return rc;
    } else {
        int k = find_seg(l, offset);
        for (int i = k + 1; i < l->nsegs; i++)
            delete_segment(l, &l->segs[i], "truncated away");
        l->nsegs = k + 1;
        if (l->cached >= k)
            l->cached = -1; /* deleted, or now the active segment */
        segment_t *s = &l->segs[k];
        int rc = segment_open_files(l->dir, s);
        if (rc == LOG_OK)
            rc = segment_truncate_to(s, offset);
        if (rc != LOG_OK)
            return rc;
    }
    int64_t end = log_end_offset(l);
    if (l->start_offset > end)
        l->start_offset = end;
    if (l->recovery_point > end)
        l->recovery_point = end;
    mark_dir_dirty(l); /* the next flush must make the shorter files durable */
    LOG_INFO("storage", "%s: truncated to offset %" PRId64 " (end now %" PRId64 ")", l->dir, offset,
             end);
    *new_end = end;
    return LOG_OK;
}

int64_t log_replay(log_t *l, int32_t chunk_max, void (*cb)(void *arg, const uint8_t *batch, size_t len),
                   void *arg)
{
    int64_t off = log_start_offset(l), end = log_end_offset(l), nbatches = 0;
    buf_t chunk;
    buf_init(&chunk);
    while (off < end) {
        log_read_t rd;
        int rc = log_read(l, off, chunk_max, true, &rd);
        if (rc != LOG_OK) {
            LOG_ERROR("storage", "%s: replay read at %" PRId64 " failed: %s", l->dir, off, log_rc_str(rc));
            nbatches = rc;
            break;
        }
        if (rd.len <= 0)
            break;
        chunk.len = 0;
        if (!buf_reserve(&chunk, (size_t)rd.len)) {
            nbatches = LOG_ERR_IO;
            break;
        }
        size_t got = 0;
        while (got < (size_t)rd.len) {
            ssize_t n = pread(rd.fd, chunk.data + got, (size_t)rd.len - got, rd.position + (off_t)got);
            if (n == -1 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got < (size_t)rd.len) {
            LOG_ERROR("storage", "%s: short replay read at %" PRId64, l->dir, off);
            nbatches = LOG_ERR_IO;
            break;
        }
        int64_t next = off;
        size_t pos = 0;
        while (pos + RB_HEADER_SIZE <= got) {
            const uint8_t *b = chunk.data + pos;
            int64_t size = rb_total_size(b);
            if (size < RB_HEADER_SIZE || pos + (size_t)size > got)
                break;
            if (rb_last_offset(b) >= off) {
                cb(arg, b, (size_t)size);
                nbatches++;
            }
            if (rb_last_offset(b) + 1 > next)
                next = rb_last_offset(b) + 1;
            pos += (size_t)size;
        }
        if (next <= off)
            break; /* no progress: a damaged region */
        off = next;
    }
    buf_free(&chunk);
    return nbatches;
}

int log_flush(log_t *l)
{
    int64_t end = log_end_offset(l);
    if (end == l->recovery_point && !l->dir_dirty)
        return LOG_OK; /* nothing written since the last flush (most partitions at shutdown) */
    for (int k = 0; k < l->nsegs; k++) {
        segment_t *s = &l->segs[k];
        if (k + 1 < l->nsegs && l->segs[k + 1].base_offset <= l->recovery_point)
            continue; /* everything in it was flushed already */
        bool was_open = segment_is_open(s);
        int rc = segment_open_files(l->dir, s);
        if (rc == LOG_OK)
            rc = segment_flush(s);
        if (!was_open)
            segment_close_files(s);
        if (rc != LOG_OK)
            return rc;
    }
    if (l->dir_dirty) {
        if (sync_dir(l->dir) != LOG_OK) {
            LOG_ERROR("storage", "fsync of %s failed: %s", l->dir, strerror(errno));
            return LOG_ERR_IO;
        }
        l->dir_dirty = false;
    }
    l->recovery_point = end;
    return LOG_OK;
}

int log_flush_begin(log_t *l, log_flush_job_t *job)
{
    job->end = log_end_offset(l);
    job->nfds = 0;
    job->dir_fd = -1;
    job->dir_gen = l->dir_gen;
    if (job->end == l->recovery_point && !l->dir_dirty)
        return LOG_OK;
    for (int k = 0; k < l->nsegs; k++) {
        segment_t *s = &l->segs[k];
        if (k + 1 < l->nsegs && l->segs[k + 1].base_offset <= l->recovery_point)
            continue;
        int rc = LOG_ERR_INVALID;
        if (job->nfds < LOG_FLUSH_MAX_FDS) {
            bool was_open = segment_is_open(s);
            rc = segment_open_files(l->dir, s);
            if (rc == LOG_OK) {
                int fd = fcntl(s->log_fd, F_DUPFD_CLOEXEC, 0);
                if (fd >= 0)
                    job->fds[job->nfds++] = fd;
                else
                    rc = LOG_ERR_IO;
            }
            if (!was_open)
                segment_close_files(s);
        }
        if (rc != LOG_OK) {
            log_flush_job_close(job);
            return rc;
        }
    }
    if (l->dir_dirty) {
        job->dir_fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (job->dir_fd == -1) {
            log_flush_job_close(job);
            return LOG_ERR_IO;
        }
    }
    return LOG_OK;
}

int log_flush_job_run(log_flush_job_t *job)
{
    int rc = LOG_OK;
    for (int i = 0; i < job->nfds && rc == LOG_OK; i++)
        while (fdatasync(job->fds[i]) == -1)
            if (errno != EINTR) {
                rc = LOG_ERR_IO;
                break;
            }
    if (rc == LOG_OK && job->dir_fd >= 0)
        while (fsync(job->dir_fd) == -1)
            if (errno != EINTR) {
                rc = LOG_ERR_IO;
                break;
            }
    return rc;
}

void log_flush_job_close(log_flush_job_t *job)
{
    for (int i = 0; i < job->nfds; i++)
        (void)close(job->fds[i]);
    job->nfds = 0;
    if (job->dir_fd >= 0)
        (void)close(job->dir_fd);
    job->dir_fd = -1;
}

void log_flush_end(log_t *l, const log_flush_job_t *job)
{
    int64_t end = job->end < log_end_offset(l) ? job->end : log_end_offset(l);
    if (end > l->recovery_point)
        l->recovery_point = end;
    if (job->dir_fd >= 0 && l->dir_gen == job->dir_gen)
        l->dir_dirty = false;
}

/* ---------------------------------------------------------------- retention */

/* The segment's largest timestamp, or its .log's mtime when its batches carry none (Kafka). */
static int64_t largest_timestamp(const log_t *l, const segment_t *s)
{
    if (s->max_timestamp >= 0)
        return s->max_timestamp;
    char path[4096];
    struct stat st;
    if (segment_path(path, sizeof(path), l->dir, s->base_offset, ".log") != LOG_OK ||
        stat(path, &st) == -1)
        return -1;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int log_apply_retention(log_t *l, int64_t now_ms)
{
    if (!l->cfg.cleanup_delete)
        return 0;
    int n = 0;
    char why[160];
    int64_t rms = l->cfg.retention_ms;
    while (rms >= 0 && n < l->nsegs - 1) {
        segment_t *s = &l->segs[n];
        int64_t ts = largest_timestamp(l, s);
        if (ts < 0 || now_ms - ts <= rms)
            break;
        snprintf(why, sizeof(why), "retention.ms %" PRId64 " breached: largest timestamp %" PRId64
                 " is %" PRId64 " ms old", rms, ts, now_ms - ts);
        delete_segment(l, s, why);
        n++;
    }
    int64_t rbytes = l->cfg.retention_bytes;
    if (rbytes >= 0) {
        int64_t size = 0;
        for (int i = n; i < l->nsegs; i++)
            size += l->segs[i].size;
        int64_t diff = size - rbytes;
        while (n < l->nsegs - 1 && diff - l->segs[n].size >= 0) {
            snprintf(why, sizeof(why), "retention.bytes %" PRId64 " breached: log size %" PRId64,
                     rbytes, size);
            diff -= l->segs[n].size;
            size -= l->segs[n].size;
            delete_segment(l, &l->segs[n], why);
            n++;
        }
    }
    drop_front(l, n);
    if (l->start_offset < l->segs[0].base_offset)
        l->start_offset = l->segs[0].base_offset;
    return n;
}

/* ---------------------------------------------------------------- cleaner support */

const char *log_dir(const log_t *l) { return l->dir; }
const log_config_t *log_get_config(const log_t *l) { return &l->cfg; }
int64_t log_cleaner_checkpoint(const log_t *l) { return l->cleaner_checkpoint; }
void log_set_cleaner_checkpoint(log_t *l, int64_t offset) { l->cleaner_checkpoint = offset; }
int64_t log_cleaner_horizon(const log_t *l) { return l->cleaner_horizon; }
void log_set_cleaner_horizon(log_t *l, int64_t horizon) { l->cleaner_horizon = horizon; }

int log_segments(const log_t *l, log_segment_info_t **out, int *n)
{
    log_segment_info_t *v = malloc((size_t)l->nsegs * sizeof(*v));
    if (!v)
        return LOG_ERR_IO;
    for (int i = 0; i < l->nsegs; i++) {
        const segment_t *s = &l->segs[i];
        v[i].base_offset = s->base_offset;
        v[i].end_offset = i + 1 < l->nsegs ? l->segs[i + 1].base_offset : s->next_offset;
        v[i].size = s->size;
        v[i].max_timestamp = s->max_timestamp;
    }
    *out = v;
    *n = l->nsegs;
    return LOG_OK;
}

int log_swap_cleaned(log_t *l, const log_segment_info_t *old, int n_old)
{
    if (n_old < 1)
        return LOG_ERR_INVALID;
    int k = find_seg(l, old[0].base_offset);
    if (k + n_old > l->nsegs - 1) /* never the active segment */
        return LOG_ERR_INVALID;
    for (int i = 0; i < n_old; i++)
        if (l->segs[k + i].base_offset != old[i].base_offset || l->segs[k + i].size != old[i].size)
            return LOG_ERR_INVALID;
    int64_t base = old[0].base_offset;
    int rc = segment_rename(l->dir, base, ".cleaned", ".swap");
    if (rc != LOG_OK) {
        (void)segment_delete_suffixed(l->dir, base, ".swap");
        return rc;
    }
    int64_t old_bytes = 0;
    for (int i = 0; i < n_old; i++) {
        segment_t *s = &l->segs[k + i];
        old_bytes += s->size;
        segment_close_files(s);
        if (i > 0)
            (void)segment_delete_files(l->dir, s->base_offset);
    }
    if (l->cached >= k && l->cached < k + n_old)
        l->cached = -1;
    else if (l->cached >= k + n_old)
        l->cached -= n_old - 1;
    int64_t next_base = l->segs[k + n_old].base_offset;
    if (n_old > 1)
        memmove(l->segs + k + 1, l->segs + k + n_old,
                (size_t)(l->nsegs - k - n_old) * sizeof(*l->segs));
    l->nsegs -= n_old - 1;
    mark_dir_dirty(l);
    segment_t *s = &l->segs[k];
    segment_init(s, base);
    s->next_offset = next_base;
    rc = segment_rename(l->dir, base, ".swap", "");
    if (rc != LOG_OK) {
        /* The next open completes the swap; until then this segment reads as empty. */
        LOG_ERROR("storage", "%s: compaction swap of %020" PRId64 " left for recovery", l->dir, base);
        return rc;
    }
    segment_t ns;
    rc = segment_load(l->dir, base, next_base, &ns);
    if (rc == LOG_ERR_CORRUPT) {
        int64_t dropped;
        rc = segment_recover(l->dir, base, l->cfg.index_interval_bytes, &ns, &dropped);
        if (rc == LOG_OK && segment_seal(&ns) != LOG_OK)
            rc = LOG_ERR_IO;
        if (rc == LOG_OK)
            ns.next_offset = next_base;
    }
    if (rc != LOG_OK)
        return rc;
    segment_close_files(&ns);
    *s = ns;
    const char *topic, *partition;
    int tlen;
    topic_partition(l, &topic, &tlen, &partition);
    LOG_INFO("storage", "topic %.*s partition %s: compacted %d segment(s) from %020" PRId64
             " into one: %" PRId64 " -> %" PRId64 " bytes", tlen, topic, partition, n_old, base,
             old_bytes, s->size);
    return LOG_OK;
}
