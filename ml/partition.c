// partition.c: IID, Dirichlet label skew, k-labels shards, quantity skew and
// contiguous rank slices. Each scheme assigns every row a part (part_of),
// and build() turns the assignment into ascending per-part row arrays.
#include "ml/partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_rand.h"

static const char *const kind_names[] = {"iid", "dirichlet", "klabels", "quantity", "contiguous"};

void part_cfg_default(part_cfg *cfg, part_kind kind, int n_parts)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->n_parts = n_parts;
    cfg->alpha = 0.5;
    cfg->min_size = 10;
    cfg->k = 2;
    cfg->power = 0.0;
    cfg->max_tries = 100;
}

cn_err part_kind_parse(const char *name, part_kind *out)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (part_kind)i;
            return CN_OK;
        }
    return CN_EINVAL;
}

const char *part_kind_name(part_kind kind)
{
    return (unsigned)kind < 5 ? kind_names[kind] : "unknown";
}

void part_range(size_t n_rows, int n, int rank, size_t *lo, size_t *hi)
{
    size_t q = n_rows / (size_t)n, r = n_rows % (size_t)n, k = (size_t)rank;
    *lo = k * q + (k < r ? k : r);
    *hi = *lo + q + (k < r ? 1 : 0);
}

static void shuffle(size_t *a, size_t n, cn_rng *r)
{
    cn_rng_shuffle(r, a, n, sizeof *a);
}

void part_set_free(part_set *p)
{
    if (p == NULL)
        return;
    if (p->rows)
        for (int i = 0; i < p->n_parts; i++)
            free(p->rows[i]);
    free(p->rows);
    free(p->sizes);
    free(p);
}

// build makes the part set from part_of (n_rows entries in [0, n)).
static cn_err build(const int *part_of, size_t n_rows, int n, part_set **out)
{
    part_set *p = calloc(1, sizeof *p);
    if (p == NULL)
        return CN_ENOMEM;
    p->n_parts = n;
    p->n_rows = n_rows;
    p->sizes = calloc((size_t)n, sizeof(size_t));
    p->rows = calloc((size_t)n, sizeof(size_t *));
    if (p->sizes == NULL || p->rows == NULL)
        goto oom;
    for (size_t i = 0; i < n_rows; i++)
        p->sizes[part_of[i]]++;
    for (int k = 0; k < n; k++)
        if ((p->rows[k] = malloc((p->sizes[k] ? p->sizes[k] : 1) * sizeof(size_t))) == NULL)
            goto oom;
    memset(p->sizes, 0, (size_t)n * sizeof(size_t));
    for (size_t i = 0; i < n_rows; i++) {
        int k = part_of[i];
        p->rows[k][p->sizes[k]++] = i;
    }
    *out = p;
    return CN_OK;
oom:
    part_set_free(p);
    return CN_ENOMEM;
}

// by_class fills rows (n_rows) with row indices grouped by class and start
// (n_classes + 1) with each group's offset; rows within a class ascending.
// pos is scratch of n_classes entries.
static void by_class(const int32_t *y, size_t n_rows, int n_classes, size_t *rows, size_t *start,
                     size_t *pos)
{
    memset(start, 0, ((size_t)n_classes + 1) * sizeof(size_t));
    for (size_t i = 0; i < n_rows; i++)
        start[y[i] + 1]++;
    for (int c = 0; c < n_classes; c++)
        start[c + 1] += start[c];
    memcpy(pos, start, (size_t)n_classes * sizeof(size_t));
    for (size_t i = 0; i < n_rows; i++)
        rows[pos[y[i]]++] = i;
}

static void split_iid(const part_cfg *cfg, size_t n_rows, size_t *perm, int *part_of)
{
    cn_rng r;
    cn_rng_seed(&r, cfg->seed, 1);
    for (size_t i = 0; i < n_rows; i++)
        perm[i] = i;
    shuffle(perm, n_rows, &r);
    for (int p = 0; p < cfg->n_parts; p++) {
        size_t lo, hi;
        part_range(n_rows, cfg->n_parts, p, &lo, &hi);
        for (size_t i = lo; i < hi; i++)
            part_of[perm[i]] = p;
    }
}

static cn_err split_dirichlet(const part_cfg *cfg, const int32_t *y, size_t n_rows, int n_classes,
                              int *part_of, char *err, size_t errlen)
{
    int n = cfg->n_parts;
    int tries = cfg->max_tries > 0 ? cfg->max_tries : 100;
    size_t *rows = malloc((n_rows ? n_rows : 1) * sizeof(size_t));
    size_t *start = malloc((2 * (size_t)n_classes + 1) * sizeof(size_t));
    size_t *sizes = malloc((size_t)n * sizeof(size_t));
    double *prop = malloc((size_t)n * sizeof(double));
    cn_err rc = CN_OK;
    if (rows == NULL || start == NULL || sizes == NULL || prop == NULL) {
        rc = cn_errf(err, errlen, CN_ENOMEM, "partition: out of memory");
        goto done;
    }
    by_class(y, n_rows, n_classes, rows, start, start + n_classes + 1);
    cn_rng r;
    cn_rng_seed(&r, cfg->seed, 2);
    double target = (double)n_rows / (double)n;
    size_t smallest = 0;
    for (int t = 0; t < tries; t++) {
        memset(sizes, 0, (size_t)n * sizeof(size_t));
        for (int c = 0; c < n_classes; c++) {
            size_t *cr = rows + start[c];
            size_t nc = start[c + 1] - start[c];
            shuffle(cr, nc, &r);
            double sum = 0.0;
            for (int p = 0; p < n; p++) {
                double g = cn_rng_gamma(&r, cfg->alpha);
                prop[p] = (double)sizes[p] < target ? g : 0.0; // self-balancing
                sum += prop[p];
            }
            if (!(sum > 0.0)) { // every part full (or all draws underflowed): spread evenly
                for (int p = 0; p < n; p++)
                    prop[p] = 1.0;
                sum = n;
            }
            double cum = 0.0;
            size_t lo = 0;
            for (int p = 0; p < n; p++) {
                cum += prop[p] / sum;
                size_t hi = p == n - 1 ? nc : (size_t)(cum * (double)nc);
                if (hi > nc)
                    hi = nc;
                if (hi < lo)
                    hi = lo;
                for (size_t i = lo; i < hi; i++)
                    part_of[cr[i]] = p;
                sizes[p] += hi - lo;
                lo = hi;
            }
        }
        smallest = sizes[0];
        for (int p = 1; p < n; p++)
            if (sizes[p] < smallest)
                smallest = sizes[p];
        if (smallest >= cfg->min_size)
            goto done;
    }
    rc = cn_errf(err, errlen, CN_ERANGE,
                 "dirichlet partition: no draw in %d tries gave every part >= %zu rows (smallest "
                 "%zu); lower min_size or raise alpha",
                 tries, cfg->min_size, smallest);
done:
    free(rows);
    free(start);
    free(sizes);
    free(prop);
    return rc;
}

static cn_err split_klabels(const part_cfg *cfg, const int32_t *y, size_t n_rows, int n_classes,
                            int *part_of, char *err, size_t errlen)
{
    int n = cfg->n_parts, k = cfg->k;
    if (k < 1 || k > n_classes)
        return cn_errf(err, errlen, CN_EINVAL, "klabels: k=%d is not allowed (1..%d classes)", k,
                       n_classes);
    if ((long long)n * k < n_classes)
        return cn_errf(err, errlen, CN_EINVAL,
                       "klabels: %d parts x %d labels < %d classes, so some rows would have no "
                       "part (raise k or the number of parts)",
                       n, k, n_classes);
    size_t *rows = malloc((n_rows ? n_rows : 1) * sizeof(size_t));
    size_t *start = malloc((2 * (size_t)n_classes + 1) * sizeof(size_t));
    size_t *order = malloc((size_t)n_classes * sizeof(size_t));
    int *holders = malloc((size_t)n * (size_t)k * sizeof(int));
    cn_err rc = CN_OK;
    if (rows == NULL || start == NULL || order == NULL || holders == NULL) {
        rc = cn_errf(err, errlen, CN_ENOMEM, "partition: out of memory");
        goto done;
    }
    by_class(y, n_rows, n_classes, rows, start, start + n_classes + 1);
    cn_rng r;
    cn_rng_seed(&r, cfg->seed, 3);
    for (int c = 0; c < n_classes; c++)
        order[c] = (size_t)c;
    shuffle(order, (size_t)n_classes, &r);
    // Slot s = p*k + j holds label order[s % C]: k consecutive labels of a
    // cyclic order are distinct, and every label gets floor or ceil(n*k/C)
    // shards.
    for (int c = 0; c < n_classes; c++) {
        int nh = 0;
        for (int s = 0; s < n * k; s++)
            if ((int)order[s % n_classes] == c)
                holders[nh++] = s / k;
        size_t *cr = rows + start[c];
        size_t nc = start[c + 1] - start[c];
        shuffle(cr, nc, &r);
        for (int h = 0; h < nh; h++) {
            size_t lo, hi;
            part_range(nc, nh, h, &lo, &hi);
            for (size_t i = lo; i < hi; i++)
                part_of[cr[i]] = holders[h];
        }
    }
done:
    free(rows);
    free(start);
    free(order);
    free(holders);
    return rc;
}

static cn_err split_quantity(const part_cfg *cfg, size_t n_rows, int *part_of, char *err,
                             size_t errlen)
{
    int n = cfg->n_parts;
    size_t *perm = malloc((n_rows ? n_rows : 1) * sizeof(size_t));
    size_t *order = malloc((size_t)n * sizeof(size_t));
    double *w = malloc((size_t)n * sizeof(double));
    size_t *sizes = malloc((size_t)n * sizeof(size_t));
    if (perm == NULL || order == NULL || w == NULL || sizes == NULL) {
        free(perm);
        free(order);
        free(w);
        free(sizes);
        return cn_errf(err, errlen, CN_ENOMEM, "partition: out of memory");
    }
    cn_rng r;
    cn_rng_seed(&r, cfg->seed, 4);
    for (int p = 0; p < n; p++)
        order[p] = (size_t)p;
    shuffle(order, (size_t)n, &r);
    double sum = 0.0;
    for (int p = 0; p < n; p++) {
        w[order[p]] =
            cfg->power > 0.0 ? pow((double)(p + 1), -cfg->power) : cn_rng_gamma(&r, cfg->alpha);
        sum += w[order[p]];
    }
    size_t rest = n_rows - (size_t)n * cfg->min_size, used = 0;
    for (int p = 0; p < n; p++) {
        sizes[p] = sum > 0.0 ? (size_t)((double)rest * (w[p] / sum)) : rest / (size_t)n;
        used += sizes[p];
    }
    for (size_t i = 0; used < rest; i++, used++) // rounding leftovers, at most n of them
        sizes[order[i % (size_t)n]]++;
    for (size_t i = 0; i < n_rows; i++)
        perm[i] = i;
    shuffle(perm, n_rows, &r);
    size_t pos = 0;
    for (int p = 0; p < n; p++) {
        size_t sz = sizes[p] + cfg->min_size;
        for (size_t i = 0; i < sz; i++)
            part_of[perm[pos++]] = p;
    }
    free(perm);
    free(order);
    free(w);
    free(sizes);
    return CN_OK;
}

cn_err part_split(const part_cfg *cfg, const int32_t *y, size_t n_rows, int n_classes,
                  part_set **out, char *err, size_t errlen)
{
    *out = NULL;
    int n = cfg->n_parts;
    if (n < 1)
        return cn_errf(err, errlen, CN_EINVAL, "partition: %d parts is not allowed (>= 1)", n);
    if ((unsigned)cfg->kind > PART_CONTIGUOUS)
        return cn_errf(err, errlen, CN_EINVAL, "partition: unknown scheme %d", (int)cfg->kind);
    int need_labels = cfg->kind == PART_DIRICHLET || cfg->kind == PART_KLABELS;
    if (need_labels && (y == NULL || n_classes < 1))
        return cn_errf(err, errlen, CN_EINVAL, "%s partition needs labels",
                       part_kind_name(cfg->kind));
    if (need_labels)
        for (size_t i = 0; i < n_rows; i++)
            if (y[i] < 0 || y[i] >= n_classes)
                return cn_errf(err, errlen, CN_EINVAL,
                               "partition: row %zu has class %d, outside [0, %d)", i, y[i],
                               n_classes);
    int uses_min = cfg->kind == PART_DIRICHLET || cfg->kind == PART_QUANTITY;
    if (uses_min && (size_t)n * cfg->min_size > n_rows)
        return cn_errf(err, errlen, CN_EINVAL,
                       "%s partition: %d parts x min_size %zu > %zu rows (lower min_size)",
                       part_kind_name(cfg->kind), n, cfg->min_size, n_rows);
    if ((cfg->kind == PART_DIRICHLET || (cfg->kind == PART_QUANTITY && cfg->power <= 0.0)) &&
        !(cfg->alpha > 0.0))
        return cn_errf(err, errlen, CN_EINVAL, "%s partition: alpha=%g is not allowed (> 0)",
                       part_kind_name(cfg->kind), cfg->alpha);
    int *part_of = malloc((n_rows ? n_rows : 1) * sizeof(int));
    size_t *perm = NULL;
    cn_err rc = CN_OK;
    if (part_of == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "partition: out of memory");
    switch (cfg->kind) {
    case PART_IID:
        if ((perm = malloc((n_rows ? n_rows : 1) * sizeof(size_t))) == NULL) {
            rc = cn_errf(err, errlen, CN_ENOMEM, "partition: out of memory");
            break;
        }
        split_iid(cfg, n_rows, perm, part_of);
        break;
    case PART_DIRICHLET:
        rc = split_dirichlet(cfg, y, n_rows, n_classes, part_of, err, errlen);
        break;
    case PART_KLABELS:
        rc = split_klabels(cfg, y, n_rows, n_classes, part_of, err, errlen);
        break;
    case PART_QUANTITY:
        rc = split_quantity(cfg, n_rows, part_of, err, errlen);
        break;
    case PART_CONTIGUOUS:
        for (int p = 0; p < n; p++) {
            size_t lo, hi;
            part_range(n_rows, n, p, &lo, &hi);
            for (size_t i = lo; i < hi; i++)
                part_of[i] = p;
        }
        break;
    }
    if (rc == CN_OK && (rc = build(part_of, n_rows, n, out)) != CN_OK)
        rc = cn_errf(err, errlen, rc, "partition: out of memory");
    free(perm);
    free(part_of);
    return rc;
}

void part_class_counts(const part_set *p, const int32_t *y, int n_classes, size_t *counts)
{
    memset(counts, 0, (size_t)p->n_parts * (size_t)n_classes * sizeof(size_t));
    for (int k = 0; k < p->n_parts; k++)
        for (size_t i = 0; i < p->sizes[k]; i++)
            counts[(size_t)k * n_classes + y[p->rows[k][i]]]++;
}

cn_err part_summary(const part_set *p, const int32_t *y, int n_classes, cn_buf *out)
{
    size_t *counts = malloc((size_t)p->n_parts * (size_t)n_classes * sizeof(size_t) + 1);
    if (counts == NULL)
        return CN_ENOMEM;
    part_class_counts(p, y, n_classes, counts);
    cn_buf_printf(out, "%-6s %8s %6s", "part", "rows", "labels");
    for (int c = 0; c < n_classes; c++)
        cn_buf_printf(out, " %7d", c);
    cn_buf_printf(out, "\n");
    for (int k = 0; k < p->n_parts; k++) {
        const size_t *ck = counts + (size_t)k * n_classes;
        int present = 0;
        for (int c = 0; c < n_classes; c++)
            present += ck[c] > 0;
        cn_buf_printf(out, "%-6d %8zu %6d", k, p->sizes[k], present);
        for (int c = 0; c < n_classes; c++)
            cn_buf_printf(out, " %7zu", ck[c]);
        cn_buf_printf(out, "\n");
    }
    free(counts);
    return out->oom ? CN_ENOMEM : CN_OK;
}
