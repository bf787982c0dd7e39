// rf_io.c: the binary forest model format (see rf.h and docs/forest.md).
//
// Layout, all integers little-endian:
//   "CNRF" magic | u32 version (1) | u64 payload length | payload | u32 CRC-32
// where the CRC-32 (zlib) covers everything before it. The payload holds the
// shape (features, classes, trees), class values, label and feature names,
// the parameters as a JSON object, the OOB score, and each tree's nodes and
// leaf class probabilities. Decoding checks magic, version, length, checksum
// and the tree structure (children after their parent, features in range)
// so a damaged file is rejected rather than crashing a predictor.
#include "ml/rf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/cn_file.h"
#include "ml/rf_impl.h"

#define RF_MAGIC "CNRF"
#define RF_VERSION 1u
#define RF_HEADER 16 // magic, version, payload length

static void put_u32(cn_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    cn_buf_append(b, x, 4);
}

static void put_u64(cn_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_f64(cn_buf *b, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(b, v);
}

static void put_f32(cn_buf *b, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(b, v);
}

static void put_str(cn_buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_u32(b, (uint32_t)n);
    cn_buf_append(b, s ? s : "", n);
}

cn_err rf_forest_encode(const rf_forest *f, cn_buf *out)
{
    size_t base = out->len;
    cn_buf_append(out, RF_MAGIC, 4);
    put_u32(out, RF_VERSION);
    put_u64(out, 0); // payload length, patched below
    size_t start = out->len;
    put_u32(out, (uint32_t)f->n_features);
    put_u32(out, (uint32_t)f->n_classes);
    put_u32(out, (uint32_t)f->n_trees);
    for (int c = 0; c < f->n_classes; c++)
        put_u32(out, (uint32_t)f->class_values[c]);
    put_str(out, f->label_name);
    put_u32(out, f->feature_names != NULL);
    if (f->feature_names)
        for (size_t j = 0; j < f->n_features; j++)
            put_str(out, f->feature_names[j]);
    cn_buf params;
    cn_buf_init(&params);
    rf_params_format(&f->params, &params);
    put_str(out, params.oom ? "{}" : params.data);
    cn_buf_fini(&params);
    put_u32(out, (uint32_t)f->has_oob);
    put_f64(out, f->oob_score);
    for (int t = 0; t < f->n_trees; t++) {
        const rf_tree *tr = &f->trees[t];
        put_u32(out, (uint32_t)tr->n_nodes);
        for (int32_t i = 0; i < tr->n_nodes; i++) {
            const rf_tnode *nd = &tr->nodes[i];
            put_u32(out, (uint32_t)nd->feature);
            put_u32(out, (uint32_t)nd->left);
            put_u32(out, (uint32_t)nd->right);
            put_u32(out, nd->n_samples);
            put_f64(out, nd->threshold);
            put_f64(out, nd->impurity);
            put_f64(out, nd->weighted_n);
        }
        size_t nv = (size_t)tr->n_nodes * (size_t)f->n_classes;
        for (size_t i = 0; i < nv; i++)
            put_f32(out, tr->value[i]);
    }
    if (out->oom)
        return CN_ENOMEM;
    uint64_t plen = out->len - start;
    for (int i = 0; i < 8; i++)
        out->data[base + 8 + (size_t)i] = (char)(plen >> (8 * i));
    uLong crc = crc32(0L, (const Bytef *)out->data + base, (uInt)(out->len - base));
    put_u32(out, (uint32_t)crc);
    return out->oom ? CN_ENOMEM : CN_OK;
}

typedef struct reader {
    const unsigned char *p;
    size_t len, pos;
    int short_read;
} reader;

static uint32_t get_u32(reader *r)
{
    if (r->len - r->pos < 4) {
        r->short_read = 1;
        r->pos = r->len;
        return 0;
    }
    const unsigned char *x = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static uint64_t get_u64(reader *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

static double get_f64(reader *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static float get_f32(reader *r)
{
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

// get_str returns a new NUL-terminated copy, or NULL (short read or OOM).
static char *get_str(reader *r)
{
    uint32_t n = get_u32(r);
    if (r->short_read || r->len - r->pos < n) {
        r->short_read = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, r->p + r->pos, n);
    s[n] = 0;
    r->pos += n;
    return s;
}

#define BAD(...) cn_errf(err, errlen, CN_EFORMAT, __VA_ARGS__)

cn_err rf_forest_decode(const void *data, size_t len, rf_forest **out, char *err, size_t errlen)
{
    *out = NULL;
    const unsigned char *p = data;
    if (len < 4 || memcmp(p, RF_MAGIC, 4) != 0)
        return BAD("not a canopy forest model (the file does not start with \"CNRF\"); "
                   "write one with `canopy forest fit`");
    if (len < RF_HEADER + 4)
        return BAD("truncated model: %zu bytes, shorter than the %d-byte header and checksum", len,
                   RF_HEADER + 4);
    reader r = {p, len, 4, 0};
    uint32_t version = get_u32(&r);
    if (version != RF_VERSION)
        return cn_errf(err, errlen, CN_EVERSION,
                       "model format version %u is not supported (this build reads version %u); "
                       "refit the model with this canopy",
                       version, RF_VERSION);
    uint64_t plen = get_u64(&r);
    if (plen > len || len - RF_HEADER - 4 < plen)
        return BAD("truncated model: the header announces %llu payload bytes but the file "
                   "holds %zu (copy the file again)",
                   (unsigned long long)plen, len - RF_HEADER - 4 > len ? 0 : len - RF_HEADER - 4);
    if (len - RF_HEADER - 4 != plen)
        return BAD("model has %zu unexpected trailing bytes", (size_t)(len - RF_HEADER - 4 - plen));
    reader tail = {p, len, RF_HEADER + (size_t)plen, 0};
    uint32_t want = get_u32(&tail);
    uint32_t got = (uint32_t)crc32(0L, p, (uInt)(RF_HEADER + plen));
    if (want != got)
        return BAD("model checksum mismatch (stored %08x, computed %08x): the file is corrupted",
                   want, got);
    r.len = RF_HEADER + (size_t)plen; // the payload ends before the checksum
    uint32_t nf = get_u32(&r), k = get_u32(&r), nt = get_u32(&r);
    if (r.short_read || nf == 0 || k == 0 || nt == 0 || nf > (1u << 24) || k > (1u << 16) ||
        nt > 1000000)
        return BAD("model has an impossible shape (%u features, %u classes, %u trees)", nf, k, nt);
    rf_forest *f = rf_forest_alloc((int)nt, nf, (int)k);
    if (f == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory loading the model");
    cn_err e = CN_OK;
    char *s = NULL;
    for (uint32_t c = 0; c < k; c++)
        f->class_values[c] = (int32_t)get_u32(&r);
    if ((s = get_str(&r)) == NULL)
        goto short_or_oom;
    snprintf(f->label_name, sizeof f->label_name, "%s", s);
    free(s);
    if (get_u32(&r)) {
        f->feature_names = calloc(nf, sizeof(char *));
        if (f->feature_names == NULL)
            goto short_or_oom;
        for (uint32_t j = 0; j < nf; j++)
            if ((f->feature_names[j] = get_str(&r)) == NULL)
                goto short_or_oom;
    }
    if ((s = get_str(&r)) == NULL)
        goto short_or_oom;
    f->params = rf_params_default();
    char perr[CN_ERRBUF_LEN];
    e = rf_params_from_json_text(&f->params, s, "model parameters", perr, sizeof perr);
    free(s);
    if (e != CN_OK) {
        e = BAD("model parameters are unreadable: %s", perr);
        goto fail;
    }
    f->has_oob = (int)get_u32(&r);
    f->oob_score = get_f64(&r);
    for (uint32_t t = 0; t < nt; t++) {
        rf_tree *tr = &f->trees[t];
        uint32_t nn = get_u32(&r);
        if (r.short_read)
            goto short_or_oom;
        // Each node takes 40 bytes plus 4 per class: reject counts the data cannot hold.
        if (nn == 0 || (uint64_t)nn * (40 + 4 * (uint64_t)k) > r.len - r.pos) {
            e = BAD("tree %u: %u nodes do not fit in the remaining %zu bytes (truncated model)", t,
                    nn, r.len - r.pos);
            goto fail;
        }
        tr->nodes = malloc((size_t)nn * sizeof *tr->nodes);
        tr->value = malloc((size_t)nn * k * sizeof *tr->value);
        if (tr->nodes == NULL || tr->value == NULL)
            goto short_or_oom;
        tr->n_nodes = tr->cap = (int32_t)nn;
        for (uint32_t i = 0; i < nn; i++) {
            rf_tnode *nd = &tr->nodes[i];
            nd->feature = (int32_t)get_u32(&r);
            nd->left = (int32_t)get_u32(&r);
            nd->right = (int32_t)get_u32(&r);
            nd->n_samples = get_u32(&r);
            nd->threshold = get_f64(&r);
            nd->impurity = get_f64(&r);
            nd->weighted_n = get_f64(&r);
            int leaf = nd->feature == -1 && nd->left == -1 && nd->right == -1;
            int split = nd->feature >= 0 && (uint32_t)nd->feature < nf && nd->left > (int32_t)i &&
                        nd->right > (int32_t)i && (uint32_t)nd->left < nn &&
                        (uint32_t)nd->right < nn && !isnan(nd->threshold);
            if (!leaf && !split) {
                e = BAD("tree %u node %u is inconsistent (feature %d, children %d/%d)", t, i,
                        nd->feature, nd->left, nd->right);
                goto fail;
            }
        }
        for (size_t i = 0; i < (size_t)nn * k; i++)
            tr->value[i] = get_f32(&r);
        if (r.short_read)
            goto short_or_oom;
        if (rf_tree_finish(tr) != CN_OK)
            goto short_or_oom;
    }
    if (r.pos != r.len) {
        e = BAD("model payload has %zu unread bytes", r.len - r.pos);
        goto fail;
    }
    *out = f;
    return CN_OK;
short_or_oom:
    if (r.short_read)
        e = BAD("truncated model: the payload ends early (copy the file again)");
    else
        e = cn_errf(err, errlen, CN_ENOMEM, "out of memory loading the model");
fail:
    rf_forest_free(f);
    return e;
}

cn_err rf_forest_save(const rf_forest *f, const char *path, char *err, size_t errlen)
{
    cn_buf b;
    cn_buf_init(&b);
    cn_err e = rf_forest_encode(f, &b);
    if (e != CN_OK) {
        cn_buf_fini(&b);
        return cn_errf(err, errlen, e, "%s: out of memory encoding the model", path);
    }
    e = cn_file_write_atomic(path, b.data, b.len, err, errlen);
    cn_buf_fini(&b);
    return e;
}

cn_err rf_forest_load(const char *path, rf_forest **out, char *err, size_t errlen)
{
    *out = NULL;
    uint8_t *data;
    size_t len;
    cn_err e = cn_file_read_all(path, 0, &data, &len, err, errlen);
    if (e != CN_OK)
        return e;
    char sub[CN_ERRBUF_LEN];
    e = rf_forest_decode(data, len, out, sub, sizeof sub);
    free(data);
    if (e != CN_OK)
        return cn_errf(err, errlen, e, "%s: %s", path, sub);
    return CN_OK;
}
