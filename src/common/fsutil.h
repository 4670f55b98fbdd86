/* fsutil.h - small file-system helpers: mkdir -p, rm -r, atomic replace, whole-file read. */
#ifndef RUNNEL_FSUTIL_H
#define RUNNEL_FSUTIL_H

#include <stddef.h>

#include "common/buf.h"

/* Creates dir and its missing parents (mode 0755). 0 or -1 (errno set). */
int fs_mkdirs(const char *path);
/* Removes a file or a whole directory tree. Missing is not an error. 0 or -1. */
int fs_remove_tree(const char *path);
/* Replaces path with data atomically: write path.tmp, fsync, rename, fsync the directory. */
int fs_write_atomic(const char *path, const void *data, size_t len);
/* The same without the fsyncs, for files that can be rebuilt (a crash may leave the old
 * version or none, never a torn one). */
int fs_write_replace(const char *path, const void *data, size_t len);
/* Appends the whole file to out (at most max bytes). 0, or -1 (errno set; ENOENT when missing). */
int fs_read_file(const char *path, buf_t *out, size_t max);
/* fsyncs a directory so a rename or unlink in it is durable. */
int fs_sync_dir(const char *dir);

#endif
