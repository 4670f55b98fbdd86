/* arena.c - chunked bump allocator; see arena.h. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 65536u

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;                /* usable bytes after the header */
    unsigned char data[];       /* 16-byte header keeps this 8-byte aligned */
};

void arena_init(arena_t *a, size_t budget)
{
    memset(a, 0, sizeof(*a));
    a->budget = budget;
}

static struct arena_chunk *chunk_new(size_t size)
{
    struct arena_chunk *c = malloc(sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->size = size;
    return c;
}

void *arena_alloc(arena_t *a, size_t n)
{
    if (n == 0)
        n = 8;
    if (n > SIZE_MAX - 8)
        return NULL;
    n = (n + 7) & ~(size_t)7;
    if (n > a->budget - a->used || a->used > a->budget)
        return NULL;
    if (n > ARENA_CHUNK / 4) {
        /* Own chunk, linked behind the current one so bumping continues there. */
        struct arena_chunk *c = chunk_new(n);
        if (c == NULL)
            return NULL;
        if (a->chunks) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            a->chunks = c;
            a->pos = a->cap = n; /* full: the next small request opens a fresh chunk */
        }
        a->used += n;
        memset(c->data, 0, n);
        return c->data;
    }
    if (a->chunks == NULL || a->cap - a->pos < n) {
        struct arena_chunk *c = chunk_new(ARENA_CHUNK);
        if (c == NULL)
            return NULL;
        c->next = a->chunks;
        a->chunks = c;
        a->pos = 0;
        a->cap = ARENA_CHUNK;
    }
    void *p = a->chunks->data + a->pos;
    a->pos += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void arena_reset(arena_t *a)
{
    struct arena_chunk *keep = NULL;
    for (struct arena_chunk *c = a->chunks, *next; c; c = next) {
        next = c->next;
        if (keep == NULL && c->size == ARENA_CHUNK)
            keep = c;
        else
            free(c);
    }
    a->chunks = keep;
    if (keep)
        keep->next = NULL;
    a->pos = 0;
    a->cap = keep ? ARENA_CHUNK : 0;
    a->used = 0;
}

void arena_free(arena_t *a)
{
    for (struct arena_chunk *c = a->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    size_t budget = a->budget;
    arena_init(a, budget);
}
