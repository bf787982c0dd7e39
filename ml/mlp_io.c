// mlp_io.c: the versioned binary model file (layer widths + flat params +
// CRC-32), written atomically and checked field by field on load.
#include "ml/mlp.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/cn_file.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "model files are little-endian");

static const uint8_t magic[7] = {'C', 'N', 'M', 'L', 'P', 0, 0};

// Model files are bounded well above any MLP canopy trains (1 GiB).
#define MODEL_MAX_BYTES ((size_t)1 << 30)

cn_err mlp_model_encode(const mlp_shape *s, const float *params, cn_buf *out)
{
    size_t start = out->len;
    uint8_t ver = MLP_FILE_VERSION;
    uint32_t nl = (uint32_t)s->n_layers;
    uint64_t np = s->n_params;
    cn_buf_append(out, magic, sizeof magic);
    cn_buf_append(out, &ver, 1);
    cn_buf_append(out, &nl, 4);
    for (int l = 0; l <= s->n_layers; l++) {
        uint32_t w = (uint32_t)s->widths[l];
        cn_buf_append(out, &w, 4);
    }
    cn_buf_append(out, &np, 8);
    cn_buf_append(out, params, s->n_params * sizeof(float));
    if (out->oom)
        return CN_ENOMEM;
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)out->data + start, (uInt)(out->len - start));
    return cn_buf_append(out, &crc, 4);
}

cn_err mlp_model_decode(const void *data, size_t len, const char *origin, mlp_shape *s,
                        float **params, char *err, size_t errlen)
{
    const uint8_t *p = data;
    *params = NULL;
    if (len < 8 || memcmp(p, magic, sizeof magic) != 0)
        return cn_errf(err, errlen, CN_EFORMAT, "%s: not a canopy MLP model (bad magic)", origin);
    if (p[7] != MLP_FILE_VERSION)
        return cn_errf(err, errlen, CN_EVERSION,
                       "%s: model format version %u is not supported (this build reads %u)", origin,
                       p[7], MLP_FILE_VERSION);
    size_t off = 8;
    uint32_t nl;
    if (len < off + 4)
        goto trunc;
    memcpy(&nl, p + off, 4);
    off += 4;
    if (nl < 1 || nl > MLP_MAX_LAYERS)
        return cn_errf(err, errlen, CN_EFORMAT, "%s: %u layers is not allowed (1..%d)", origin, nl,
                       MLP_MAX_LAYERS);
    int widths[MLP_MAX_LAYERS + 1];
    if (len < off + 4 * ((size_t)nl + 1) + 8)
        goto trunc;
    for (uint32_t l = 0; l <= nl; l++) {
        uint32_t w;
        memcpy(&w, p + off, 4);
        off += 4;
        if (w < 1 || w > (1u << 24))
            return cn_errf(err, errlen, CN_EFORMAT, "%s: layer width %u is not allowed", origin, w);
        widths[l] = (int)w;
    }
    uint64_t np;
    memcpy(&np, p + off, 8);
    off += 8;
    cn_err rc = mlp_shape_init(s, widths[0], widths + 1, (int)nl - 1, widths[nl], err, errlen);
    if (rc != CN_OK)
        return cn_errf(err, errlen, CN_EFORMAT, "%s: bad layer widths", origin);
    if (np != s->n_params)
        return cn_errf(err, errlen, CN_EFORMAT,
                       "%s: header says %llu parameters, the layer widths imply %zu", origin,
                       (unsigned long long)np, s->n_params);
    size_t want = off + s->n_params * sizeof(float) + 4;
    if (len != want)
        return cn_errf(err, errlen, CN_EFORMAT, "%s: file has %zu bytes, the header implies %zu%s",
                       origin, len, want, len < want ? " (truncated)" : " (trailing data)");
    uint32_t crc, have = (uint32_t)crc32(0L, (const Bytef *)p, (uInt)(len - 4));
    memcpy(&crc, p + len - 4, 4);
    if (crc != have)
        return cn_errf(err, errlen, CN_EIO, "%s: checksum mismatch (file is corrupted)", origin);
    float *w = malloc(s->n_params * sizeof(float));
    if (w == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "%s: out of memory", origin);
    memcpy(w, p + off, s->n_params * sizeof(float));
    *params = w;
    return CN_OK;
trunc:
    return cn_errf(err, errlen, CN_EFORMAT, "%s: file is truncated (%zu bytes)", origin, len);
}

cn_err mlp_model_save(const char *path, const mlp_shape *s, const float *params, char *err,
                      size_t errlen)
{
    cn_buf b;
    cn_buf_init(&b);
    cn_err rc = mlp_model_encode(s, params, &b);
    if (rc != CN_OK) {
        cn_buf_fini(&b);
        return cn_errf(err, errlen, rc, "%s: out of memory encoding the model", path);
    }
    rc = cn_file_write_atomic(path, b.data, b.len, err, errlen);
    cn_buf_fini(&b);
    return rc;
}

cn_err mlp_model_load(const char *path, mlp_shape *s, float **params, char *err, size_t errlen)
{
    uint8_t *data = NULL;
    size_t len = 0;
    *params = NULL;
    cn_err rc = cn_file_read_all(path, MODEL_MAX_BYTES, &data, &len, err, errlen);
    if (rc != CN_OK)
        return rc;
    rc = mlp_model_decode(data, len, path, s, params, err, errlen);
    free(data);
    return rc;
}
