/* fsutil.c - see fsutil.h. */
#define _XOPEN_SOURCE 700
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) == -1 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) == -1 && errno != EEXIST)
        return -1;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) == -1 && errno != ENOENT)
        return -1;
    return 0;
}

int fs_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == -1)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

int fs_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_replace(const char *path, const void *data, size_t len, bool durable)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1)
        return -1;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (durable && fsync(fd) == -1)
        goto fail;
    if (close(fd) == -1) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1)
        goto fail;
    if (!durable)
        return 0;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    return fs_sync_dir(dirname(dir));
fail:;
    int saved = errno;
    if (fd != -1)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

int fs_write_atomic(const char *path, const void *data, size_t len)
{
    return write_replace(path, data, len, true);
}

int fs_write_replace(const char *path, const void *data, size_t len)
{
    return write_replace(path, data, len, false);
}

int fs_read_file(const char *path, buf_t *out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    for (;;) {
        if (!buf_reserve(out, 4096)) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        ssize_t r = read(fd, out->data + out->len, out->cap - out->len);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
        if (out->len > max) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    close(fd);
    return 0;
}
