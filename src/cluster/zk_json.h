/*
 * zk_json.h - the small JSON subset Kafka keeps in ZooKeeper znodes
 * (objects, arrays, strings, integers, true/false/null), read in place.
 *
 * Values are addressed by a pointer to their first character inside a
 * [text, end) range; nothing is allocated. Every reader checks bounds and
 * returns -1 (or NULL) on malformed input, never reading past `end`.
 */
#ifndef RUNNEL_ZK_JSON_H
#define RUNNEL_ZK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Skips whitespace, then one whole value. Returns the character after it, or NULL if malformed. */
const char *zkjson_skip(const char *s, const char *end);
/* The value of `key` in the object starting at obj (leading whitespace allowed), or NULL. */
const char *zkjson_find(const char *obj, const char *end, const char *key);
/* An integer value (a JSON number without fraction, or a string holding one). 0 or -1. */
int zkjson_int(const char *v, const char *end, int64_t *out);
/* An array of integers: returns the count (at most max are stored) or -1. */
int zkjson_int_array(const char *v, const char *end, int32_t *out, int max);
/* A string value, unescaped into out (NUL-terminated, truncated to outlen-1): its length or -1. */
int zkjson_string(const char *v, const char *end, char *out, size_t outlen);
/* Calls cb for each member of an object (key unescaped, value pointer); stops when cb returns
 * non-zero. Returns the number of members, or -1 if malformed. */
int zkjson_object_foreach(const char *obj, const char *end,
                          int (*cb)(void *arg, const char *key, const char *v, const char *end), void *arg);
/* Appends s as a JSON string (quoted, escaped). */
void zkjson_put_string(buf_t *b, const char *s);

#endif
