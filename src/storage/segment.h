/*
 * segment.h - one log segment: <base>.log plus its .index and .timeindex (layouts in segment.c
 * and index.c). A segment_t is O(1) state; the files may be closed (fds -1) while the segment is
 * not in use, and segment_open_files reopens them. Functions that read or write data require the
 * files open.
 *
 * Threading: none of this is locked; the owning log is used by one thread at a time.
 */
#ifndef RUNNEL_STORAGE_SEGMENT_H
#define RUNNEL_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/log.h"

typedef struct segment {
    int64_t base_offset;
    int64_t size;              /* bytes of whole batches in .log */
    int64_t next_offset;       /* after the last batch (active segment); next segment's base for
                                  older segments loaded without a scan */
    int64_t max_timestamp;     /* largest batch maxTimestamp, -1 when none */
    int64_t max_ts_offset;     /* lastOffset of the first batch reaching it, -1 when none */
    int64_t first_append_ms;   /* clock for segment.ms rolling, -1 when unknown/empty */
    int64_t bytes_since_index; /* log bytes since the last indexed batch's start */
    int64_t idx_entries;       /* entries in .index */
    int32_t idx_last_rel;      /* last .index entry (tail reads skip the binary search), */
    int32_t idx_last_pos;      /* -1 when there is none */
    int64_t tidx_entries;      /* entries in .timeindex */
    int64_t tidx_last_ts;      /* timestamp of the last .timeindex entry, -1 when none */
    int log_fd, idx_fd, tidx_fd;
} segment_t;

/* One batch as seen by a header scan. */
typedef struct segment_batch {
    int64_t position;
    int64_t size; /* whole batch: 12 + batchLength */
    int64_t base_offset;
    int64_t last_offset;
    int64_t max_timestamp;
} segment_batch_t;

/* "<dir>/<20-digit base><ext>" into out; LOG_ERR_INVALID when it does not fit. */
int segment_path(char *out, size_t cap, const char *dir, int64_t base, const char *ext);
/* Parses "<20 digits><ext>"; true with *base and *ext (pointing into name) when it matches. */
bool segment_parse_name(const char *name, int64_t *base, const char **ext);

void segment_init(segment_t *s, int64_t base);
/* Creates empty .log/.index/.timeindex (truncating leftovers) and leaves them open. */
int segment_create(const char *dir, int64_t base, segment_t *s);
int segment_open_files(const char *dir, segment_t *s);
void segment_close_files(segment_t *s);
static inline bool segment_is_open(const segment_t *s) { return s->log_fd >= 0; }

/* Loads an existing segment without reading its batches' payloads, and leaves its files open.
 * next_base: base of the following segment, or -1 for the last one (whose tail after the last
 * index entry is then walked header by header to learn its end and largest timestamp).
 * LOG_ERR_CORRUPT means "rebuild it with segment_recover": an index is missing or inconsistent,
 * or the last segment's tail is not whole batches. */
int segment_load(const char *dir, int64_t base, int64_t next_base, segment_t *s);
/* Scans every batch (framing, magic 2, CRC-32C, increasing offsets), truncates the .log at the
 * first bad one (WARN; *bytes_dropped), rebuilds both indexes; leaves the files open. */
int segment_recover(const char *dir, int64_t base, int32_t index_interval, segment_t *s,
                    int64_t *bytes_dropped);

/* Checks the framing of a buffer of batches (whole batches, batchLength sane, magic 2,
 * lastOffsetDelta >= 0) and sums their offset counts. LOG_OK or LOG_ERR_INVALID. */
int segment_check_batches(const uint8_t *batches, size_t len, int64_t *offset_count);
/* Appends checked batches at the end, assigning offsets from s->next_offset and the leader
 * epoch in place, and indexes them. On failure the files and *s are as before. */
int segment_append(segment_t *s, uint8_t *batches, size_t len, int32_t leader_epoch,
                   int32_t index_interval, int64_t now_ms);
/* Adds the final time-index entry (largest timestamp) if missing; on roll and close. */
int segment_seal(segment_t *s);

/* First batch with lastOffset >= offset. 1 found, 0 none in this segment, negative log_rc. */
int segment_locate(const segment_t *s, int64_t offset, segment_batch_t *b);
/* The batch holding `offset` and the following whole batches up to max_bytes (see log_read).
 * 1 with *first and *len (0 when the first batch exceeds max_bytes and !min_one), 0 when the
 * offset is past this segment's last batch, negative log_rc. */
int segment_read(const segment_t *s, int64_t offset, int32_t max_bytes, bool min_one,
                 segment_batch_t *first, int64_t *len);
/* First batch with lastOffset >= min_offset and maxTimestamp >= ts, using the time index.
 * 1 found, 0 none, negative log_rc. */
int segment_find_timestamp(const segment_t *s, int64_t ts, int64_t min_offset,
                           segment_batch_t *b);
/* Largest maxTimestamp among batches with lastOffset >= min_offset, scanning from there
 * (for a segment cut by the log start offset). 1 with *ts and *offset, 0 none, negative log_rc. */
int segment_max_timestamp_from(const segment_t *s, int64_t min_offset, int64_t *ts,
                               int64_t *offset);
/* Drops every batch with lastOffset >= offset; next_offset becomes min(offset, first dropped
 * batch's base). Trims both indexes to match. */
int segment_truncate_to(segment_t *s, int64_t offset);
/* fdatasync of the open files. */
int segment_flush(const segment_t *s);
/* Compaction output: creates <base>.log<suffix>, .index<suffix> and .timeindex<suffix> (e.g.
 * suffix ".cleaned"), truncating leftovers, and leaves them open. */
int segment_create_suffixed(const char *dir, int64_t base, const char *suffix, segment_t *s);
/* Appends whole batches that already carry their offsets (increasing, >= s->next_offset, within
 * the segment's int32 range; gaps allowed) and indexes them. LOG_ERR_INVALID when they do not. */
int segment_append_as_is(segment_t *s, const uint8_t *batches, size_t len, int32_t index_interval);
/* Renames the segment's three files from suffix `from` to suffix `to` ("" = the plain names):
 * .index and .timeindex first (skipped when missing), the .log last. */
int segment_rename(const char *dir, int64_t base, const char *from, const char *to);
/* Unlinks <base>.log<suffix>, .index<suffix>, .timeindex<suffix> (missing ones are fine). */
int segment_delete_suffixed(const char *dir, int64_t base, const char *suffix);
/* Walks the batch headers of a segment file: *last = the largest lastOffset among its whole
 * leading batches (-1 when none). LOG_OK or LOG_ERR_IO. */
int segment_file_last_offset(const char *path, int64_t *last);
/* Unlinks the segment's files (missing ones are fine). */
int segment_delete_files(const char *dir, int64_t base);

#endif
