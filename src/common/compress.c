/*
 * compress.c - gzip (zlib), snappy (xerial framing and raw), lz4 (frame) and
 * zstd (frame) for record batches. See compress.h for the wire forms.
 *
 * Every decoder writes straight into the caller's buffer in bounded steps:
 * each step may produce at most (max_out - produced + 1) bytes, so crossing
 * the limit is noticed after at most one byte too many and memory never grows
 * beyond max_out plus one step. On failure the buffer is cut back to where it
 * started, so callers never see half an output.
 */
#define ZLIB_CONST
#include "common/compress.h"

#include <limits.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* Output step of the streaming decoders. */
#define COMPRESS_STEP (64 * 1024)
/* Uncompressed block size of the xerial snappy writer (the Java default). */
#define XERIAL_BLOCK (32 * 1024)
#define XERIAL_HEADER_LEN 16
/* Kafka's default zstd level. */
#define ZSTD_LEVEL 3

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};

int compress_codec_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcmp(name, "none") == 0 || strcmp(name, "uncompressed") == 0)
        return COMPRESS_NONE;
    if (strcmp(name, "gzip") == 0)
        return COMPRESS_GZIP;
    if (strcmp(name, "snappy") == 0)
        return COMPRESS_SNAPPY;
    if (strcmp(name, "lz4") == 0)
        return COMPRESS_LZ4;
    if (strcmp(name, "zstd") == 0)
        return COMPRESS_ZSTD;
    return -1;
}

const char *compress_codec_name(int codec)
{
    switch (codec) {
    case COMPRESS_NONE: return "none";
    case COMPRESS_GZIP: return "gzip";
    case COMPRESS_SNAPPY: return "snappy";
    case COMPRESS_LZ4: return "lz4";
    case COMPRESS_ZSTD: return "zstd";
    default: return "unknown";
    }
}

/* Size of the next output step given what is already produced: never more
 * than one byte past the limit, never zero. */
static size_t step_size(size_t produced, size_t max_out)
{
    size_t room = produced <= max_out ? max_out - produced : 0;
    return room < COMPRESS_STEP ? room + 1 : COMPRESS_STEP;
}

/* ---- gzip ---- */

static int gzip_decompress(const uint8_t *in, size_t in_len, buf_t *out, size_t max_out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) /* 16: gzip wrapper only */
        return -1;
    size_t fed = 0, produced = 0;
    int rc = -1;
    zs.next_in = in;
    for (;;) {
        if (zs.avail_in == 0 && fed < in_len) {
            size_t n = in_len - fed < UINT_MAX ? in_len - fed : UINT_MAX;
            zs.next_in = in + fed;
            zs.avail_in = (uInt)n;
            fed += n;
        }
        size_t step = step_size(produced, max_out);
        if (!buf_reserve(out, step))
            break;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)step;
        int zr = inflate(&zs, Z_NO_FLUSH);
        size_t got = step - zs.avail_out;
        out->len += got;
        produced += got;
        if (produced > max_out)
            break;
        if (zr == Z_STREAM_END) {
            size_t left = zs.avail_in + (in_len - fed);
            /* Another member may follow (gzip streams concatenate). Like
             * Java's GZIPInputStream, bytes that do not start a member are
             * trailing padding and end the stream. */
            const uint8_t *next = left ? (zs.avail_in ? zs.next_in : in + fed) : NULL;
            if (left < 2 || next[0] != 0x1f || next[1] != 0x8b) {
                rc = 0;
                break;
            }
            if (inflateReset(&zs) != Z_OK)
                break;
            continue;
        }
        /* Z_BUF_ERROR with room to write means the input ran out mid-stream. */
        if (zr != Z_OK)
            break;
    }
    inflateEnd(&zs);
    return rc;
}

static int gzip_compress(const uint8_t *in, size_t in_len, buf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t fed = 0;
    int rc = -1;
    size_t want = deflateBound(&zs, (uLong)(in_len < ULONG_MAX ? in_len : ULONG_MAX));
    for (;;) {
        if (zs.avail_in == 0 && fed < in_len) {
            size_t n = in_len - fed < UINT_MAX ? in_len - fed : UINT_MAX;
            zs.next_in = in + fed;
            zs.avail_in = (uInt)n;
            fed += n;
        }
        size_t step = want > COMPRESS_STEP ? (want < UINT_MAX ? want : UINT_MAX) : COMPRESS_STEP;
        want = 0;
        if (!buf_reserve(out, step))
            break;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)step;
        int zr = deflate(&zs, fed == in_len ? Z_FINISH : Z_NO_FLUSH);
        out->len += step - zs.avail_out;
        if (zr == Z_STREAM_END) {
            rc = 0;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            break;
    }
    deflateEnd(&zs);
    return rc;
}

/* ---- snappy ---- */

static int snappy_raw_decompress(const uint8_t *in, size_t in_len, buf_t *out, size_t *produced,
                                 size_t max_out)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)in, in_len, &ulen) != SNAPPY_OK)
        return -1;
    if (ulen > max_out - *produced)
        return -1;
    if (!buf_reserve(out, ulen ? ulen : 1))
        return -1;
    size_t got = ulen;
    if (snappy_uncompress((const char *)in, in_len, (char *)out->data + out->len, &got) != SNAPPY_OK ||
        got != ulen)
        return -1;
    out->len += got;
    *produced += got;
    return 0;
}

static int snappy_decompress(const uint8_t *in, size_t in_len, buf_t *out, size_t max_out)
{
    size_t produced = 0;
    if (in_len < XERIAL_HEADER_LEN || memcmp(in, xerial_magic, sizeof(xerial_magic)) != 0)
        return snappy_raw_decompress(in, in_len, out, &produced, max_out);
    /* The two version words are not checked: every writer uses 1/1 and the
     * block format has never changed. */
    size_t pos = XERIAL_HEADER_LEN;
    while (pos < in_len) {
        if (in_len - pos < 4)
            return -1;
        int32_t blen = (int32_t)be_get32(in + pos);
        pos += 4;
        if (blen < 0 || (size_t)blen > in_len - pos)
            return -1;
        if (blen > 0 && snappy_raw_decompress(in + pos, (size_t)blen, out, &produced, max_out) != 0)
            return -1;
        pos += (size_t)blen;
    }
    return 0;
}

static int snappy_compress_xerial(const uint8_t *in, size_t in_len, buf_t *out)
{
    buf_put(out, xerial_magic, sizeof(xerial_magic));
    buf_put_i32(out, 1); /* version */
    buf_put_i32(out, 1); /* minimum compatible version */
    for (size_t pos = 0; pos < in_len; pos += XERIAL_BLOCK) {
        size_t n = in_len - pos < XERIAL_BLOCK ? in_len - pos : XERIAL_BLOCK;
        size_t cap = snappy_max_compressed_length(n);
        if (!buf_reserve(out, 4 + cap))
            return -1;
        size_t clen = cap;
        char *dst = (char *)out->data + out->len + 4;
        if (snappy_compress((const char *)in + pos, n, dst, &clen) != SNAPPY_OK)
            return -1;
        be_put32(out->data + out->len, (uint32_t)clen);
        out->len += 4 + clen;
    }
    return out->oom ? -1 : 0;
}

/* ---- lz4 ---- */

static int lz4_decompress(const uint8_t *in, size_t in_len, buf_t *out, size_t max_out)
{
    LZ4F_dctx *dctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return -1;
    size_t pos = 0, produced = 0;
    int rc = -1;
    for (;;) {
        size_t step = step_size(produced, max_out);
        if (!buf_reserve(out, step))
            break;
        size_t dst = step, src = in_len - pos;
        size_t hint = LZ4F_decompress(dctx, out->data + out->len, &dst, in + pos, &src, NULL);
        if (LZ4F_isError(hint))
            break;
        pos += src;
        out->len += dst;
        produced += dst;
        if (produced > max_out)
            break;
        /* hint 0: a frame ended and is fully flushed; a next frame may follow. */
        if (hint == 0 && pos == in_len) {
            rc = 0;
            break;
        }
        /* Input gone and the output not full: the frame is truncated. */
        if (pos == in_len && dst < step)
            break;
        if (src == 0 && dst == 0)
            break;
    }
    LZ4F_freeDecompressionContext(dctx);
    return rc;
}

static int lz4_compress(const uint8_t *in, size_t in_len, buf_t *out)
{
    static const uint8_t empty[1];
    /* What Kafka's Java writer emits: 64 KiB independent blocks, no checksums
     * beyond the header's; its reader refuses dependent blocks. */
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    size_t bound = LZ4F_compressFrameBound(in_len, &prefs);
    if (!buf_reserve(out, bound))
        return -1;
    size_t n = LZ4F_compressFrame(out->data + out->len, bound, in_len ? (const void *)in : empty, in_len,
                                  &prefs);
    if (LZ4F_isError(n))
        return -1;
    out->len += n;
    return 0;
}

/* ---- zstd ---- */

static int zstd_decompress(const uint8_t *in, size_t in_len, buf_t *out, size_t max_out)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (dctx == NULL)
        return -1;
    ZSTD_inBuffer ib = {in, in_len, 0};
    size_t produced = 0;
    int rc = -1;
    for (;;) {
        size_t step = step_size(produced, max_out);
        if (!buf_reserve(out, step))
            break;
        ZSTD_outBuffer ob = {out->data + out->len, step, 0};
        size_t before = ib.pos;
        size_t r = ZSTD_decompressStream(dctx, &ob, &ib);
        if (ZSTD_isError(r))
            break;
        out->len += ob.pos;
        produced += ob.pos;
        if (produced > max_out)
            break;
        /* r 0: a frame ended and is fully flushed; a next frame may follow. */
        if (r == 0 && ib.pos == ib.size) {
            rc = 0;
            break;
        }
        if (ib.pos == ib.size && ob.pos < ob.size)
            break; /* truncated */
        if (ib.pos == before && ob.pos == 0)
            break;
    }
    ZSTD_freeDCtx(dctx);
    return rc;
}

static int zstd_compress(const uint8_t *in, size_t in_len, buf_t *out)
{
    static const uint8_t empty[1];
    size_t bound = ZSTD_compressBound(in_len);
    if (!buf_reserve(out, bound))
        return -1;
    size_t n = ZSTD_compress(out->data + out->len, bound, in_len ? (const void *)in : empty, in_len,
                             ZSTD_LEVEL);
    if (ZSTD_isError(n))
        return -1;
    out->len += n;
    return 0;
}

int compress_decompress(int codec, const uint8_t *in, size_t in_len, buf_t *out, size_t max_out)
{
    size_t start = out->len;
    int rc;
    switch (codec) {
    case COMPRESS_NONE:
        rc = in_len <= max_out ? 0 : -1;
        if (rc == 0)
            buf_put(out, in, in_len);
        break;
    case COMPRESS_GZIP: rc = gzip_decompress(in, in_len, out, max_out); break;
    case COMPRESS_SNAPPY: rc = snappy_decompress(in, in_len, out, max_out); break;
    case COMPRESS_LZ4: rc = lz4_decompress(in, in_len, out, max_out); break;
    case COMPRESS_ZSTD: rc = zstd_decompress(in, in_len, out, max_out); break;
    default: rc = -1; break;
    }
    if (rc != 0 || out->oom) {
        out->len = start;
        return -1;
    }
    return 0;
}

int compress_compress(int codec, const uint8_t *in, size_t in_len, buf_t *out)
{
    size_t start = out->len;
    int rc;
    switch (codec) {
    case COMPRESS_NONE:
        buf_put(out, in, in_len);
        rc = 0;
        break;
    case COMPRESS_GZIP: rc = gzip_compress(in, in_len, out); break;
    case COMPRESS_SNAPPY: rc = snappy_compress_xerial(in, in_len, out); break;
    case COMPRESS_LZ4: rc = lz4_compress(in, in_len, out); break;
    case COMPRESS_ZSTD: rc = zstd_compress(in, in_len, out); break;
    default: rc = -1; break;
    }
    if (rc != 0 || out->oom) {
        out->len = start;
        return -1;
    }
    return 0;
}
