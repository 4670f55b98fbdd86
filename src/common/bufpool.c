/* bufpool.c - see bufpool.h. */
#include "bufpool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* Cached blocks are poisoned under AddressSanitizer, so a use after bufpool_free (or past the
 * size asked for) is still reported although the memory is not freed. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUFPOOL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BUFPOOL_ASAN 1
#endif
#ifdef BUFPOOL_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MIN_SHIFT 16 /* the smallest class, 64 KiB: blocks of up to half of it stay with malloc */
#define MAX_SHIFT 24 /* 16 MiB: bigger ones are rare enough to allocate each time */
#define NCLASSES (MAX_SHIFT - MIN_SHIFT + 1)
#define CACHE_BYTES ((size_t)64 << 20)
#define CLASS_MAX_BLOCKS 64
#define CLASS_BYTES ((size_t)32 << 20) /* 32 blocks of 1 MiB: 16 parked produces on each of two connections */

/* In front of every block; 16 bytes keep the caller's pointer 16-byte aligned. */
typedef struct block_hdr {
    struct block_hdr *next; /* while cached */
    int32_t cls;            /* size class, or -1 for a plain malloc block */
    int32_t pad;
} block_hdr_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static block_hdr_t *cached[NCLASSES];
static int ncached[NCLASSES];
static size_t cached_bytes;

static int class_of(size_t size)
{
    if (size <= (size_t)1 << (MIN_SHIFT - 1) || size > (size_t)1 << MAX_SHIFT)
        return -1;
    int cls = 0;
    while (((size_t)1 << (MIN_SHIFT + cls)) < size)
        cls++;
    return cls;
}

/* A class keeps at most CLASS_BYTES (at least two blocks, at most CLASS_MAX_BLOCKS). */
static int class_limit(int cls)
{
    size_t n = CLASS_BYTES >> (MIN_SHIFT + cls);
    if (n < 2)
        n = 2;
    return n > CLASS_MAX_BLOCKS ? CLASS_MAX_BLOCKS : (int)n;
}

void *bufpool_alloc(size_t size)
{
    int cls = class_of(size);
    block_hdr_t *h = NULL;
    if (cls >= 0) {
        pthread_mutex_lock(&mu);
        h = cached[cls];
        if (h) {
            cached[cls] = h->next;
            ncached[cls]--;
            cached_bytes -= (size_t)1 << (MIN_SHIFT + cls);
        }
        pthread_mutex_unlock(&mu);
        if (h == NULL)
            h = malloc(sizeof(*h) + ((size_t)1 << (MIN_SHIFT + cls)));
    } else {
        h = malloc(sizeof(*h) + size);
    }
    if (h == NULL)
        return NULL;
    UNPOISON(h, sizeof(*h) + size);
    if (cls >= 0) /* past the size asked for stays out of bounds */
        POISON((char *)(h + 1) + size, ((size_t)1 << (MIN_SHIFT + cls)) - size);
    h->cls = cls;
    return h + 1;
}

void bufpool_free(void *p)
{
    if (p == NULL)
        return;
    block_hdr_t *h = (block_hdr_t *)p - 1;
    int cls = h->cls;
    if (cls >= 0) {
        size_t bytes = (size_t)1 << (MIN_SHIFT + cls);
        pthread_mutex_lock(&mu);
        if (ncached[cls] < class_limit(cls) && cached_bytes + bytes <= CACHE_BYTES) {
            h->next = cached[cls];
            cached[cls] = h;
            ncached[cls]++;
            cached_bytes += bytes;
            POISON(h + 1, bytes);
            h = NULL;
        }
        pthread_mutex_unlock(&mu);
        if (h)
            UNPOISON(h, sizeof(*h) + bytes);
    }
    free(h);
}

void bufpool_drain(void)
{
    pthread_mutex_lock(&mu);
    for (int cls = 0; cls < NCLASSES; cls++) {
        while (cached[cls]) {
            block_hdr_t *h = cached[cls];
            cached[cls] = h->next;
            UNPOISON(h, sizeof(*h) + ((size_t)1 << (MIN_SHIFT + cls)));
            free(h);
        }
        ncached[cls] = 0;
    }
    cached_bytes = 0;
    pthread_mutex_unlock(&mu);
}
