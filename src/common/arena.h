/*
 * arena.h - per-request bump allocator with a byte budget.
 *
 * A decoded request's arrays live here; the broker gives each request one
 * arena and frees (or resets) it once the response has been encoded, so the
 * decoder never mallocs per field and never has to free piecemeal. Memory
 * comes in 64 KiB chunks; a request bigger than a quarter chunk gets a chunk
 * of its own so it does not waste the tail of the current one. The budget
 * bounds the bytes handed out (rounded up to 8), so a frame that claims huge
 * arrays fails with NULL instead of exhausting the process.
 *
 * Not thread-safe: an arena belongs to the one thread handling its request.
 */
#ifndef RUNNEL_ARENA_H
#define RUNNEL_ARENA_H

#include <stddef.h>

struct arena_chunk;

typedef struct arena {
    struct arena_chunk *chunks; /* current bump chunk first, then older and dedicated ones */
    size_t pos, cap;            /* bump position and size of the current chunk */
    size_t used;                /* bytes handed out since init/reset, counted against budget */
    size_t budget;
} arena_t;

/* Sets up an empty arena; nothing is allocated until the first arena_alloc. */
void arena_init(arena_t *a, size_t budget);
/* Returns n zeroed bytes, 8-byte aligned (a valid unique pointer even for n == 0),
 * or NULL when the budget would be exceeded or malloc fails. */
void *arena_alloc(arena_t *a, size_t n);
/* Forgets every allocation; keeps one standard chunk for reuse. */
void arena_reset(arena_t *a);
/* Releases all memory; the arena may be arena_init'ed again. */
void arena_free(arena_t *a);

#endif
