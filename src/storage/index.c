/*
 * index.c - the sparse offset index and time index of a segment.
 *
 * <base>.index: back-to-back 8-byte entries, big-endian:
 *    0 relativeOffset int32   lastOffset of the indexed batch minus the segment's base offset
 *    4 position       int32   byte position of that batch in <base>.log
 *   Relative offsets and positions strictly increase. An entry is written for a batch once at
 *   least log.index.interval.bytes of log lie between the previous indexed batch and it, so a
 *   lookup scans at most about that many bytes of batch headers.
 *
 * <base>.timeindex: back-to-back 12-byte entries, big-endian:
 *    0 timestamp      int64   the largest batch maxTimestamp of the segment so far
 *    8 relativeOffset int32   lastOffset of the first batch that reached it, minus the base
 *   Timestamps strictly increase. Entries are added at the same moments as offset-index entries
 *   (when the largest timestamp grew since the last entry) and once more when the segment rolls or
 *   the log closes, so the last entry of a closed segment carries its largest timestamp.
 *
 * Both files hold exactly their valid entries (size = entries x entry size, no preallocation),
 * which is how Kafka leaves them once a segment rolls and what kafka-dump-log reads.
 * Nothing is kept in memory: lookups binary-search the file with pread.
 */
#include "storage/index.h"

#include <errno.h>
#include <unistd.h>

#include "common/logger.h"

static int pwrite_all(int fd, const uint8_t *p, size_t n, int64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            LOG_ERROR("storage", "index write failed: %s", strerror(errno));
            return LOG_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return LOG_OK;
}

/* Reads exactly n bytes; a short file is corruption, not an I/O error. */
static int pread_exact(int fd, uint8_t *p, size_t n, int64_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            LOG_ERROR("storage", "index read failed: %s", strerror(errno));
            return LOG_ERR_IO;
        }
        if (r == 0)
            return LOG_ERR_CORRUPT;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return LOG_OK;
}

int index_write(int fd, int64_t at, const uint8_t *entries, int64_t count)
{
    return pwrite_all(fd, entries, (size_t)count * INDEX_ENTRY_SIZE, at * INDEX_ENTRY_SIZE);
}

int timeindex_write(int fd, int64_t at, const uint8_t *entries, int64_t count)
{
    return pwrite_all(fd, entries, (size_t)count * TIMEINDEX_ENTRY_SIZE, at * TIMEINDEX_ENTRY_SIZE);
}

int index_entry(int fd, int64_t slot, int32_t *rel_offset, int32_t *position)
{
    uint8_t e[INDEX_ENTRY_SIZE];
    int rc = pread_exact(fd, e, sizeof(e), slot * INDEX_ENTRY_SIZE);
    if (rc != LOG_OK)
        return rc;
    *rel_offset = (int32_t)be_get32(e);
    *position = (int32_t)be_get32(e + 4);
    return LOG_OK;
}

int timeindex_entry(int fd, int64_t slot, int64_t *timestamp, int32_t *rel_offset)
{
    uint8_t e[TIMEINDEX_ENTRY_SIZE];
    int rc = pread_exact(fd, e, sizeof(e), slot * TIMEINDEX_ENTRY_SIZE);
    if (rc != LOG_OK)
        return rc;
    *timestamp = (int64_t)be_get64(e);
    *rel_offset = (int32_t)be_get32(e + 8);
    return LOG_OK;
}

int64_t index_entries_for_size(int64_t file_size, int entry_size)
{
    if (file_size < 0 || file_size % entry_size != 0)
        return -1;
    return file_size / entry_size;
}

/* Entries a search reads with one pread once its range is this small (4 KiB). */
#define INDEX_SEARCH_BLOCK 512

/* Binary search for the last entry whose column `col` (0 relativeOffset, 1 position) is <= target.
 * Returns how many entries are <= target (0: none, *rel_offset and *position untouched), or a
 * LOG_ERR_*. Probes one entry per pread while the range is large, then reads the remaining range
 * (at most INDEX_SEARCH_BLOCK entries) with one pread and finishes in memory: about half the
 * preads of probing to the end. A short read there falls back to probing entry by entry, so a
 * damaged file gives the same answer as before. */
static int64_t index_search(int fd, int64_t entries, int col, int64_t target, int32_t *rel_offset,
                            int32_t *position)
{
    /* Invariant: entries [0, lo) are <= target, entries [hi, n) are > target. */
    int64_t lo = 0, hi = entries;
    int32_t best_off = 0, best_pos = 0;
    uint8_t block[INDEX_SEARCH_BLOCK * INDEX_ENTRY_SIZE];
    bool block_ok = true;
    while (lo < hi) {
        if (block_ok && hi - lo <= INDEX_SEARCH_BLOCK) {
            size_t want = (size_t)(hi - lo) * INDEX_ENTRY_SIZE;
            ssize_t got;
            do
                got = pread(fd, block, want, (off_t)(lo * INDEX_ENTRY_SIZE));
            while (got == -1 && errno == EINTR);
            if (got == (ssize_t)want) {
                /* Entries increase in both columns: scan for the first one above target. */
                int64_t n = hi - lo, k = 0;
                while (k < n) {
                    const uint8_t *e = block + k * INDEX_ENTRY_SIZE;
                    if ((int32_t)be_get32(e + 4 * col) > target)
                        break;
                    best_off = (int32_t)be_get32(e);
                    best_pos = (int32_t)be_get32(e + 4);
                    k++;
                }
                lo += k;
                break;
            }
            block_ok = false; /* short or failed: probe as before, which reports it */
            continue;
        }
        int64_t mid = lo + (hi - lo) / 2;
        int32_t o, p;
        int rc = index_entry(fd, mid, &o, &p);
        if (rc != LOG_OK)
            return rc;
        if ((col == 0 ? o : p) <= target) {
            lo = mid + 1;
            best_off = o;
            best_pos = p;
        } else {
            hi = mid;
        }
    }
    if (lo > 0) {
        /* best_* came from entry lo-1: the last probe that went right, or the block's scan. */
        *rel_offset = best_off;
        *position = best_pos;
    }
    return lo;
}

int64_t index_lookup(int fd, int64_t entries, int64_t rel_target, int32_t *rel_offset,
                     int32_t *position)
{
    return index_search(fd, entries, 0, rel_target, rel_offset, position);
}

int64_t index_lookup_position(int fd, int64_t entries, int64_t position, int32_t *rel_offset,
                              int32_t *pos_out)
{
    return index_search(fd, entries, 1, position, rel_offset, pos_out);
}

int64_t timeindex_lookup(int fd, int64_t entries, int64_t ts, int64_t *timestamp,
                         int32_t *rel_offset)
{
    int64_t lo = 0, hi = entries;
    int64_t best_ts = 0;
    int32_t best_off = 0;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int64_t t;
        int32_t o;
        int rc = timeindex_entry(fd, mid, &t, &o);
        if (rc != LOG_OK)
            return rc;
        if (t <= ts) {
            lo = mid + 1;
            best_ts = t;
            best_off = o;
        } else {
            hi = mid;
        }
    }
    if (lo > 0) {
        *timestamp = best_ts;
        *rel_offset = best_off;
    }
    return lo;
}

int64_t timeindex_count_below(int fd, int64_t entries, int64_t rel_limit)
{
    int64_t lo = 0, hi = entries;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int64_t t;
        int32_t o;
        int rc = timeindex_entry(fd, mid, &t, &o);
        if (rc != LOG_OK)
            return rc;
        if (o < rel_limit)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int truncate_to(int fd, int64_t size)
{
    while (ftruncate(fd, (off_t)size) == -1) {
        if (errno == EINTR)
            continue;
        LOG_ERROR("storage", "index truncate failed: %s", strerror(errno));
        return LOG_ERR_IO;
    }
    return LOG_OK;
}

int index_truncate(int fd, int64_t entries)
{
    return truncate_to(fd, entries * INDEX_ENTRY_SIZE);
}

int timeindex_truncate(int fd, int64_t entries)
{
    return truncate_to(fd, entries * TIMEINDEX_ENTRY_SIZE);
}
