/*
 * bufpool.h - reuse of large request buffers.
 *
 * Every request frame is one malloc'd block the size of the request. glibc
 * gives big freed blocks back to the kernel (munmap, heap trim), so each new
 * 1 MiB produce frame came back as fresh pages: a page fault and a page
 * clearing per 4 KiB before the socket read could fill it (11 % of the
 * broker's CPU with produces parked for flushes). Blocks over 32 KiB come
 * in power-of-two size classes (64 KiB to 16 MiB) and are kept here when
 * freed, to be handed out again; smaller ones go straight to malloc, whose
 * bins already recycle them.
 *
 * The cache is bounded (a few dozen blocks per class, 64 MiB in all), so a
 * burst of huge requests does not pin memory for good.
 * Thread-safe (one mutex, taken once per request).
 */
#ifndef RUNNEL_BUFPOOL_H
#define RUNNEL_BUFPOOL_H

#include <stddef.h>

/* size usable bytes (16-byte aligned), uninitialised; NULL when out of memory. */
void *bufpool_alloc(size_t size);
/* Gives back a block from bufpool_alloc (NULL is ignored). */
void bufpool_free(void *p);
/* Frees the cached blocks (at exit, and for leak checkers). */
void bufpool_drain(void);

#endif
