/* zk_json.c - see zk_json.h. A recursive-descent skipper bounded by depth. */
#include "zk_json.h"

#include <stdbool.h>
#include <string.h>

#define ZKJSON_MAX_DEPTH 32

static const char *ws(const char *s, const char *end)
{
    while (s && s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    return s;
}

/* Past the closing quote of the string starting at s (which is '"'). */
static const char *skip_string(const char *s, const char *end)
{
    for (s++; s < end; s++) {
        if (*s == '\\') {
            if (++s >= end)
                return NULL;
        } else if (*s == '"') {
            return s + 1;
        }
    }
    return NULL;
}

static const char *skip_value(const char *s, const char *end, int depth)
{
    s = ws(s, end);
    if (s == NULL || s >= end || depth > ZKJSON_MAX_DEPTH)
        return NULL;
    if (*s == '"')
        return skip_string(s, end);
    if (*s == '{' || *s == '[') {
        char close = *s == '{' ? '}' : ']';
        bool obj = *s == '{';
        s = ws(s + 1, end);
        if (s < end && *s == close)
            return s + 1;
        for (;;) {
            if (obj) {
                s = ws(s, end);
                if (s >= end || *s != '"' || (s = skip_string(s, end)) == NULL)
                    return NULL;
                s = ws(s, end);
                if (s >= end || *s != ':')
                    return NULL;
                s++;
            }
            s = skip_value(s, end, depth + 1);
            s = ws(s, end);
            if (s == NULL || s >= end)
                return NULL;
            if (*s == close)
                return s + 1;
            if (*s != ',')
                return NULL;
            s++;
        }
    }
    if (*s == '-' || (*s >= '0' && *s <= '9')) {
        if (*s == '-' && (++s >= end || *s < '0' || *s > '9'))
            return NULL;
        const char *start = s;
        s++;
        while (s < end && ((*s >= '0' && *s <= '9') || *s == '.' || *s == 'e' || *s == 'E' || *s == '+' ||
                           *s == '-'))
            s++;
        return s > start ? s : NULL;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(end - s) >= n && memcmp(s, words[i], n) == 0)
            return s + n;
    }
    return NULL;
}

const char *zkjson_skip(const char *s, const char *end) { return skip_value(s, end, 0); }

int zkjson_string(const char *v, const char *end, char *out, size_t outlen)
{
    v = ws(v, end);
    if (v == NULL || v >= end || *v != '"' || outlen == 0)
        return -1;
    size_t n = 0;
    for (v++; v < end; v++) {
        char c = *v;
        if (c == '"') {
            out[n < outlen ? n : outlen - 1] = '\0';
            return (int)n;
        }
        if (c == '\\') {
            if (++v >= end)
                return -1;
            switch (*v) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                /* Kafka's znodes are ASCII; other code points become '?'. */
                if (end - v < 5)
                    return -1;
                v += 4;
                c = '?';
                break;
            default: c = *v; break;
            }
        }
        if (n + 1 < outlen)
            out[n] = c;
        n++;
    }
    return -1;
}

int zkjson_object_foreach(const char *obj, const char *end,
                          int (*cb)(void *arg, const char *key, const char *v, const char *end), void *arg)
{
    const char *s = ws(obj, end);
    if (s == NULL || s >= end || *s != '{' || zkjson_skip(s, end) == NULL)
        return -1;
    s = ws(s + 1, end);
    int count = 0;
    if (*s == '}')
        return 0;
    for (;;) {
        char key[256];
        if (zkjson_string(s, end, key, sizeof(key)) < 0)
            return -1;
        s = ws(skip_string(ws(s, end), end), end);
        if (s == NULL || s >= end || *s != ':')
            return -1;
        const char *v = ws(s + 1, end);
        count++;
        if (cb && cb(arg, key, v, end) != 0)
            return count;
        s = ws(zkjson_skip(v, end), end);
        if (s == NULL || s >= end)
            return -1;
        if (*s == '}')
            return count;
        s = ws(s + 1, end);
    }
}

typedef struct find_ctx {
    const char *key;
    const char *found;
} find_ctx_t;

static int find_cb(void *arg, const char *key, const char *v, const char *end)
{
    (void)end;
    find_ctx_t *f = arg;
    if (strcmp(key, f->key) != 0)
        return 0;
    f->found = v;
    return 1;
}

const char *zkjson_find(const char *obj, const char *end, const char *key)
{
    find_ctx_t f = {key, NULL};
    if (zkjson_object_foreach(obj, end, find_cb, &f) < 0)
        return NULL;
    return f.found;
}

int zkjson_int(const char *v, const char *end, int64_t *out)
{
    v = ws(v, end);
    if (v == NULL || v >= end)
        return -1;
    bool quoted = *v == '"';
    if (quoted)
        v++;
    bool neg = false;
    if (v < end && *v == '-') {
        neg = true;
        v++;
    }
    if (v >= end || *v < '0' || *v > '9')
        return -1;
    int64_t x = 0;
    while (v < end && *v >= '0' && *v <= '9') {
        if (x > (INT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (*v - '0');
        v++;
    }
    if (quoted && (v >= end || *v != '"'))
        return -1;
    if (!quoted && v < end && (*v == '.' || *v == 'e' || *v == 'E'))
        return -1;
    *out = neg ? -x : x;
    return 0;
}

int zkjson_int_array(const char *v, const char *end, int32_t *out, int max)
{
    const char *s = ws(v, end);
    if (s == NULL || s >= end || *s != '[' || zkjson_skip(s, end) == NULL)
        return -1;
    s = ws(s + 1, end);
    int n = 0;
    if (*s == ']')
        return 0;
    for (;;) {
        int64_t x;
        if (zkjson_int(s, end, &x) != 0 || x < INT32_MIN || x > INT32_MAX)
            return -1;
        if (n < max)
            out[n] = (int32_t)x;
        n++;
        s = ws(zkjson_skip(s, end), end);
        if (s == NULL || s >= end)
            return -1;
        if (*s == ']')
            return n;
        if (*s != ',')
            return -1;
        s++;
    }
}

void zkjson_put_string(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_put(b, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_put(b, e, 6);
        } else {
            buf_put(b, s, 1);
        }
    }
    buf_put(b, "\"", 1);
}
