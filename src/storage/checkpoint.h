/*
 * checkpoint.h - Kafka's offset checkpoint files in a log dir (recovery-point-offset-checkpoint,
 * log-start-offset-checkpoint, replication-offset-checkpoint, cleaner-offset-checkpoint).
 * Text: a version line "0", a line with the entry count, then one "topic partition offset" line
 * per entry, each ending in '\n'.
 *
 * Threading: no shared state; concurrent writers of the same path must be serialised by the
 * caller.
 */
#ifndef RUNNEL_STORAGE_CHECKPOINT_H
#define RUNNEL_STORAGE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/log.h"

typedef struct checkpoint_entry {
    char topic[256];
    int32_t partition;
    int64_t offset;
} checkpoint_entry_t;

/* Atomic replace: writes path.tmp, fsyncs it, renames it over path, fsyncs the directory.
 * LOG_ERR_INVALID for an empty topic or one holding whitespace; LOG_ERR_IO otherwise. */
int checkpoint_write(const char *path, const checkpoint_entry_t *entries, size_t n);
/* A missing file is 0 entries and LOG_OK; a malformed one (bad version, count mismatch, bad
 * line) is LOG_ERR_CORRUPT, which the caller logs and treats as absent. *entries is malloc'd
 * (NULL when n == 0); the caller frees it. */
int checkpoint_read(const char *path, checkpoint_entry_t **entries, size_t *n);

#endif
