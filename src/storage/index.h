/*
 * index.h - a segment's sparse offset index (.index) and time index (.timeindex).
 * Layouts are described at the top of index.c. The functions take the open fd and the number of
 * entries the caller knows the file holds; nothing is cached in memory.
 *
 * Threading: stateless; callers serialise access per file (one thread per log at a time).
 */
#ifndef RUNNEL_STORAGE_INDEX_H
#define RUNNEL_STORAGE_INDEX_H

#include <stdint.h>

#include "common/buf.h"
#include "storage/log.h"

#define INDEX_ENTRY_SIZE 8
#define TIMEINDEX_ENTRY_SIZE 12

static inline void index_encode(uint8_t *p, int32_t rel_offset, int32_t position)
{
    be_put32(p, (uint32_t)rel_offset);
    be_put32(p + 4, (uint32_t)position);
}
static inline void timeindex_encode(uint8_t *p, int64_t timestamp, int32_t rel_offset)
{
    be_put64(p, (uint64_t)timestamp);
    be_put32(p + 8, (uint32_t)rel_offset);
}

/* Writes `count` already-encoded entries at entry slot `at` (normally the current count). */
int index_write(int fd, int64_t at, const uint8_t *entries, int64_t count);
int timeindex_write(int fd, int64_t at, const uint8_t *entries, int64_t count);
/* Reads entry `slot` (< entries). LOG_OK, LOG_ERR_IO, or LOG_ERR_CORRUPT when the file is short. */
int index_entry(int fd, int64_t slot, int32_t *rel_offset, int32_t *position);
int timeindex_entry(int fd, int64_t slot, int64_t *timestamp, int32_t *rel_offset);
/* Number of entries in a file of `file_size` bytes, or -1 when the size is not a whole number. */
int64_t index_entries_for_size(int64_t file_size, int entry_size);

/* Largest entry whose relative offset is <= rel_target. Returns how many entries are <= the
 * target (0 = none; then the outputs are untouched) with the last of them in the outputs, or a
 * negative log_rc. Entries must be sorted by offset (they are). */
int64_t index_lookup(int fd, int64_t entries, int64_t rel_target, int32_t *rel_offset,
                     int32_t *position);
/* Largest entry whose position is <= position; same return convention (positions increase too). */
int64_t index_lookup_position(int fd, int64_t entries, int64_t position, int32_t *rel_offset,
                              int32_t *pos_out);
/* Largest entry whose timestamp is <= ts; same return convention. */
int64_t timeindex_lookup(int fd, int64_t entries, int64_t ts, int64_t *timestamp,
                         int32_t *rel_offset);
/* How many leading entries have a relative offset < rel_limit (for truncation), or a
 * negative log_rc. */
int64_t timeindex_count_below(int fd, int64_t entries, int64_t rel_limit);

/* Cuts the file to `entries` entries. */
int index_truncate(int fd, int64_t entries);
int timeindex_truncate(int fd, int64_t entries);

#endif
