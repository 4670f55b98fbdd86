/*
 * properties.c - Java .properties reading and writing; the rules are in properties.h.
 *
 * Parsing is two steps per entry: first the natural lines of one logical line are
 * joined (continuation backslash and the next line's leading blanks removed, escapes
 * left intact so an escaped separator is still recognisable), then the joined text is
 * split into key and value and each part is unescaped.
 */
#include "common/properties.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROPERTIES_MAX_FILE (64u << 20)

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\f';
}

static bool is_eol(char c)
{
    return c == '\n' || c == '\r';
}

/* Steps over the line terminator at pos (\n, \r or \r\n), if any. */
static size_t skip_eol(const char *text, size_t len, size_t pos)
{
    if (pos < len && text[pos] == '\r')
        pos++;
    else if (pos < len && text[pos] == '\n')
        return pos + 1;
    if (pos < len && text[pos] == '\n')
        pos++;
    return pos;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put_utf8(buf_t *out, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_put(out, b, n);
}

/* Reads the 4 hex digits after "\u" at r[i]; -1 if there are not 4 valid ones. */
static int32_t read_u4(const char *r, size_t i, size_t end)
{
    if (end - i < 4)
        return -1;
    int32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hex_val(r[i + k]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Unescapes r[from, to) into out and NUL-terminates it. -1 on a malformed \u escape or
 * an escaped NUL. */
static int unescape(const char *r, size_t from, size_t to, buf_t *out, int line,
                    char *err, size_t errlen)
{
    out->len = 0;
    size_t i = from;
    while (i < to) {
        char c = r[i++];
        if (c != '\\') {
            buf_put(out, &c, 1);
            continue;
        }
        if (i >= to)
            break; /* a lone trailing backslash escapes nothing */
        c = r[i++];
        switch (c) {
        case 't': buf_put(out, "\t", 1); break;
        case 'n': buf_put(out, "\n", 1); break;
        case 'r': buf_put(out, "\r", 1); break;
        case 'f': buf_put(out, "\f", 1); break;
        case 'u': {
            int32_t u = read_u4(r, i, to);
            if (u < 0) {
                set_err(err, errlen, "line %d: Malformed \\uxxxx encoding", line);
                return -1;
            }
            i += 4;
            uint32_t cp = (uint32_t)u;
            if (cp == 0) {
                set_err(err, errlen, "line %d: \\u0000 is not allowed", line);
                return -1;
            }
            if (cp >= 0xd800 && cp <= 0xdbff && to - i >= 6 && r[i] == '\\' && r[i + 1] == 'u') {
                int32_t lo = read_u4(r, i + 2, to);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                    i += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff)
                cp = 0xfffd; /* an unpaired surrogate has no UTF-8 form */
            put_utf8(out, cp);
            break;
        }
        default:
            buf_put(out, &c, 1);
            break;
        }
    }
    buf_put(out, "", 1);
    return 0;
}

/* Splits one joined logical line into key and value and reports it. */
static int emit_entry(const char *r, size_t n, int line, properties_cb cb, void *arg,
                      buf_t *kbuf, buf_t *vbuf, char *err, size_t errlen)
{
    size_t i = 0, key_end = n;
    while (i < n) {
        char c = r[i];
        if (c == '\\') {
            i += 2;
            continue;
        }
        if (c == '=' || c == ':') {
            key_end = i++;
            break;
        }
        if (is_blank(c)) {
            key_end = i;
            while (i < n && is_blank(r[i]))
                i++;
            if (i < n && (r[i] == '=' || r[i] == ':'))
                i++;
            break;
        }
        i++;
    }
    if (i > n)
        i = n;
    if (key_end > n)
        key_end = n;
    while (i < n && is_blank(r[i]))
        i++;
    if (unescape(r, 0, key_end, kbuf, line, err, errlen) != 0 ||
        unescape(r, i, n, vbuf, line, err, errlen) != 0)
        return -1;
    if (kbuf->oom || vbuf->oom) {
        set_err(err, errlen, "line %d: out of memory", line);
        return -1;
    }
    cb(arg, (const char *)kbuf->data, (const char *)vbuf->data, line);
    return 0;
}

int properties_parse(const char *text, size_t len, properties_cb cb, void *arg,
                     char *err, size_t errlen)
{
    buf_t logical, kbuf, vbuf;
    buf_init(&logical);
    buf_init(&kbuf);
    buf_init(&vbuf);
    int rc = 0, line = 1;
    size_t pos = 0;

    while (pos < len) {
        int start_line = line;
        while (pos < len && is_blank(text[pos]))
            pos++;
        if (pos >= len)
            break;
        if (is_eol(text[pos]) || text[pos] == '#' || text[pos] == '!') {
            /* Blank or comment line: skip it whole; comments never continue. */
            while (pos < len && !is_eol(text[pos]))
                pos++;
            pos = skip_eol(text, len, pos);
            line++;
            continue;
        }
        logical.len = 0;
        for (;;) {
            size_t seg = pos;
            while (pos < len && !is_eol(text[pos])) {
                if (text[pos] == '\0') {
                    set_err(err, errlen, "line %d: NUL byte in properties text", line);
                    rc = -1;
                    goto out;
                }
                pos++;
            }
            size_t backslashes = 0;
            while (pos - backslashes > seg && text[pos - backslashes - 1] == '\\')
                backslashes++;
            bool cont = (backslashes & 1) != 0;
            buf_put(&logical, text + seg, pos - seg - (cont ? 1 : 0));
            /* Consume the terminator: \n, \r or \r\n. */
            if (pos < len) {
                pos = skip_eol(text, len, pos);
                line++;
            }
            if (!cont || pos >= len)
                break;
            while (pos < len && is_blank(text[pos]))
                pos++;
        }
        if (logical.oom) {
            set_err(err, errlen, "line %d: out of memory", start_line);
            rc = -1;
            goto out;
        }
        if (emit_entry((const char *)logical.data, logical.len, start_line, cb, arg,
                       &kbuf, &vbuf, err, errlen) != 0) {
            rc = -1;
            goto out;
        }
    }
out:
    buf_free(&logical);
    buf_free(&kbuf);
    buf_free(&vbuf);
    return rc;
}

int properties_load_file(const char *path, properties_cb cb, void *arg, char *err, size_t errlen)
{
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd == -1 && errno == EINTR);
    if (fd == -1) {
        int e = errno;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == -1) {
        int e = errno;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        close(fd);
        errno = e;
        return -1;
    }
    if (st.st_size > (off_t)PROPERTIES_MAX_FILE) {
        set_err(err, errlen, "%s: file larger than %u bytes", path, PROPERTIES_MAX_FILE);
        close(fd);
        errno = EFBIG;
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *text = malloc(cap);
    if (text == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        if (n == cap) {
            /* The file grew after fstat: keep reading up to the limit. */
            if (cap >= PROPERTIES_MAX_FILE) {
                set_err(err, errlen, "%s: file larger than %u bytes", path, PROPERTIES_MAX_FILE);
                free(text);
                close(fd);
                errno = EFBIG;
                return -1;
            }
            char *t = realloc(text, cap * 2);
            if (t == NULL) {
                set_err(err, errlen, "%s: out of memory", path);
                free(text);
                close(fd);
                errno = ENOMEM;
                return -1;
            }
            text = t;
            cap *= 2;
        }
        ssize_t r = read(fd, text + n, cap - n);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            int e = errno;
            set_err(err, errlen, "%s: %s", path, strerror(e));
            free(text);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    char perr[200];
    int rc = properties_parse(text, n, cb, arg, perr, sizeof(perr));
    free(text);
    if (rc != 0) {
        set_err(err, errlen, "%s: %s", path, perr);
        errno = EINVAL;
    }
    return rc;
}

static void write_escaped(buf_t *out, const char *s, bool is_key)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\t': buf_put(out, "\\t", 2); continue;
        case '\n': buf_put(out, "\\n", 2); continue;
        case '\r': buf_put(out, "\\r", 2); continue;
        case '\f': buf_put(out, "\\f", 2); continue;
        case '\\': case '=': case ':': case '#': case '!':
            buf_put(out, "\\", 1);
            buf_put(out, &s[i], 1);
            continue;
        case ' ':
            if (is_key || i == 0)
                buf_put(out, "\\", 1);
            buf_put(out, " ", 1);
            continue;
        default:
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            char u[7];
            snprintf(u, sizeof(u), "\\u%04X", c);
            buf_put(out, u, 6);
        } else {
            buf_put(out, &s[i], 1);
        }
    }
}

void properties_write_entry(buf_t *out, const char *key, const char *value)
{
    write_escaped(out, key, true);
    buf_put(out, "=", 1);
    write_escaped(out, value, false);
    buf_put(out, "\n", 1);
}
