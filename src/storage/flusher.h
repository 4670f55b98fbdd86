/*
 * flusher.h - a few background threads that run log flushes (fdatasync of
 * segment files, fsync of partition directories) so the event loop keeps
 * taking appends meanwhile: appends that arrive during a flush are covered
 * by the next one, which is group commit. Used for flush.messages /
 * flush.ms (durable mode).
 *
 * Jobs are prepared by the owner with log_flush_begin (log.h), started in
 * submission order (several run at once, so the partitions of one round
 * sync together), and handed back through an eventfd in the order they
 * finish; the owner then calls log_flush_end for the ones that succeeded.
 *
 * @locality: flusher_submit / flusher_take_done / flusher_free on the loop
 * thread; the workers only touch the jobs' descriptors.
 */
#ifndef RUNNEL_FLUSHER_H
#define RUNNEL_FLUSHER_H

#include "storage/log.h"

typedef struct flusher flusher_t;

typedef struct flush_job {
    struct flush_job *next;
    log_flush_job_t log_job;
    int rc;      /* LOG_OK or LOG_ERR_IO once done */
    void *owner; /* the caller's, e.g. the partition */
    uint64_t owner_gen;
} flush_job_t;

/* Starts the workers. NULL when no thread or the eventfd cannot be created. */
flusher_t *flusher_new(void);
/* Readable when finished jobs wait: then call flusher_take_done. */
int flusher_event_fd(const flusher_t *f);
/* Queues a job (taken over until it comes back from flusher_take_done). */
void flusher_submit(flusher_t *f, flush_job_t *job);
/* The finished jobs in the order they finished (their descriptors closed); NULL when none. */
flush_job_t *flusher_take_done(flusher_t *f);
/* Finishes the queued jobs, stops the workers and frees jobs never taken back. */
void flusher_free(flusher_t *f);

#endif
