// idx_load.c: MNIST-format IDX images and labels into a ds_dataset.
//
// The whole file is read (and gunzipped) with cn_file_read_all, the header is
// validated against the byte count, and only then are the pixels converted.
#include "ml/idx.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_file.h"

// Upper bound on a decompressed IDX file (the largest MNIST-style sets are
// tens of MB; this guards against gzip bombs).
#define IDX_MAX_BYTES ((size_t)4 << 30)

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

// short_name writes the file's base name without ".gz" and "-idxN-ubyte"
// into out, so messages read "t10k-images: ...".
static void short_name(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, n, "%s", base);
    size_t len = strlen(out);
    if (len > 3 && strcmp(out + len - 3, ".gz") == 0)
        out[len -= 3] = 0;
    const char *tails[] = {"-idx3-ubyte", "-idx1-ubyte", ".idx3-ubyte", ".idx1-ubyte"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t tl = strlen(tails[i]);
        if (len > tl && strcmp(out + len - tl, tails[i]) == 0) {
            out[len - tl] = 0;
            break;
        }
    }
}

// read_idx reads path, checks the magic and that the file holds exactly the
// bytes the header promises. On success *data owns the file, *dims holds
// ndim dimensions and *payload points past the header.
static cn_err read_idx(const char *path, uint32_t magic, uint32_t *dims, uint8_t **data,
                       const uint8_t **payload, char *err, size_t errlen)
{
    char name[256];
    size_t len = 0;
    int ndim = (int)(magic & 0xff);
    *data = NULL;
    short_name(path, name, sizeof name);
    cn_err rc = cn_file_read_all(path, IDX_MAX_BYTES, data, &len, err, errlen);
    if (rc != CN_OK)
        return rc;
    size_t hdr = 4 + 4 * (size_t)ndim;
    uint32_t m = len >= 4 ? be32(*data) : 0;
    if (len >= 4 && m != magic) {
        rc = cn_errf(err, errlen, CN_EFORMAT,
                     "%s: bad IDX magic 0x%08x (expected 0x%08x, %s; is this the right file?)",
                     name, m, magic, ndim == 3 ? "uint8 images" : "uint8 labels");
        goto fail;
    }
    if (len < hdr) {
        rc = cn_errf(err, errlen, CN_EFORMAT, "%s: file has %zu bytes, too short for an IDX header",
                     name, len);
        goto fail;
    }
    char shape[128] = "";
    size_t sl = 0;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(*data + 4 + 4 * (size_t)i);
        if (dims[i] == 0) {
            rc = cn_errf(err, errlen, CN_EFORMAT, "%s: header dimension %d is zero", name, i);
            goto fail;
        }
        sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%u", i ? "x" : "", dims[i]);
    }
    // The product is checked for overflow: dimensions whose product wraps
    // to the file's size would otherwise pass.
    uint64_t total = 1;
    bool wraps = false;
    for (int i = 0; i < ndim; i++)
        wraps = wraps || __builtin_mul_overflow(total, (uint64_t)dims[i], &total);
    if (wraps || total > (uint64_t)len) {
        rc = cn_errf(err, errlen, CN_EFORMAT, "%s: header says %s, more bytes than the file's %zu",
                     name, shape, len);
        goto fail;
    }
    if (total + hdr != (uint64_t)len) {
        rc = cn_errf(err, errlen, CN_EFORMAT, "%s: header says %s = %llu bytes, file has %zu", name,
                     shape, (unsigned long long)(total + hdr), len);
        goto fail;
    }
    *payload = *data + hdr;
    return CN_OK;
fail:
    free(*data);
    *data = NULL;
    return rc;
}

cn_err idx_load_images(const char *path, size_t max_rows, ds_dataset **out, char *err,
                       size_t errlen)
{
    uint32_t dims[3];
    uint8_t *data;
    const uint8_t *px;
    *out = NULL;
    cn_err rc = read_idx(path, IDX_MAGIC_IMAGES, dims, &data, &px, err, errlen);
    if (rc != CN_OK)
        return rc;
    size_t rows = dims[0];
    if (max_rows > 0 && max_rows < rows)
        rows = max_rows;
    size_t feat = (size_t)dims[1] * dims[2];
    ds_dataset *d = ds_dataset_new(rows, feat, 0);
    if (d == NULL) {
        free(data);
        return cn_errf(err, errlen, CN_ENOMEM, "%s: out of memory for %zux%zu floats", path, rows,
                       feat);
    }
    const float scale = 1.0f / 255.0f;
    for (size_t i = 0; i < rows * feat; i++)
        d->x[i] = (float)px[i] * scale;
    free(data);
    *out = d;
    return CN_OK;
}

cn_err idx_load_labels(const char *path, size_t max_rows, int32_t **labels, size_t *n, char *err,
                       size_t errlen)
{
    uint32_t dims[1];
    uint8_t *data;
    const uint8_t *p;
    *labels = NULL;
    *n = 0;
    cn_err rc = read_idx(path, IDX_MAGIC_LABELS, dims, &data, &p, err, errlen);
    if (rc != CN_OK)
        return rc;
    size_t rows = dims[0];
    if (max_rows > 0 && max_rows < rows)
        rows = max_rows;
    int32_t *y = malloc(rows * sizeof *y);
    if (y == NULL) {
        free(data);
        return cn_errf(err, errlen, CN_ENOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < rows; i++)
        y[i] = p[i];
    free(data);
    *labels = y;
    *n = rows;
    return CN_OK;
}

cn_err idx_load(const char *images_path, const char *labels_path, size_t max_rows, ds_dataset **out,
                char *err, size_t errlen)
{
    ds_dataset *d = NULL;
    int32_t *y = NULL;
    size_t ny = 0;
    *out = NULL;
    // Load both in full first so the counts are compared before truncation.
    cn_err rc = idx_load_images(images_path, 0, &d, err, errlen);
    if (rc != CN_OK)
        return rc;
    rc = idx_load_labels(labels_path, 0, &y, &ny, err, errlen);
    if (rc != CN_OK)
        goto fail;
    if (ny != d->n_rows) {
        char a[256], b[256];
        short_name(images_path, a, sizeof a);
        short_name(labels_path, b, sizeof b);
        rc = cn_errf(err, errlen, CN_EFORMAT,
                     "%s has %zu labels but %s has %zu images (use the matching pair of files)", b,
                     ny, a, d->n_rows);
        goto fail;
    }
    if (max_rows > 0 && max_rows < d->n_rows)
        d->n_rows = max_rows; // the extra rows stay allocated until ds_dataset_free
    int32_t maxl = 0;
    for (size_t i = 0; i < d->n_rows; i++)
        if (y[i] > maxl)
            maxl = y[i];
    d->y = y;
    y = NULL;
    d->n_classes = maxl + 1;
    d->class_values = malloc((size_t)d->n_classes * sizeof(int32_t));
    if (d->class_values == NULL) {
        rc = cn_errf(err, errlen, CN_ENOMEM, "%s: out of memory", labels_path);
        goto fail;
    }
    for (int c = 0; c < d->n_classes; c++)
        d->class_values[c] = c;
    snprintf(d->label_name, sizeof d->label_name, "label");
    *out = d;
    return CN_OK;
fail:
    free(y);
    ds_dataset_free(d);
    return rc;
}
