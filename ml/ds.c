// ds.c: allocation and subsetting of data sets.
#include "ml/ds.h"

#include <stdlib.h>
#include <string.h>

ds_dataset *ds_dataset_new(size_t n_rows, size_t n_features, int labelled)
{
    ds_dataset *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->n_rows = n_rows;
    d->n_features = n_features;
    size_t cells, bytes;
    if (__builtin_mul_overflow(n_rows, n_features, &cells) ||
        __builtin_mul_overflow(cells > 0 ? cells : 1, sizeof(float), &bytes)) {
        free(d);
        return NULL;
    }
    d->x = malloc(bytes);
    if (labelled)
        d->y = malloc((n_rows ? n_rows : 1) * sizeof(int32_t));
    if (d->x == NULL || (labelled && d->y == NULL)) {
        ds_dataset_free(d);
        return NULL;
    }
    return d;
}

void ds_dataset_free(ds_dataset *d)
{
    if (d == NULL)
        return;
    if (d->feature_names) {
        for (size_t i = 0; i < d->n_features; i++)
            free(d->feature_names[i]);
        free(d->feature_names);
    }
    free(d->x);
    free(d->y);
    free(d->class_values);
    free(d->ids);
    free(d);
}

cn_err ds_dataset_subset(const ds_dataset *d, const size_t *rows, size_t n, ds_dataset **out)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (rows[i] >= d->n_rows)
            return CN_ERANGE;
    ds_dataset *s = ds_dataset_new(n, d->n_features, d->y != NULL);
    if (s == NULL)
        return CN_ENOMEM;
    s->n_classes = d->n_classes;
    memcpy(s->label_name, d->label_name, sizeof s->label_name);
    if (d->class_values) {
        s->class_values = malloc((size_t)d->n_classes * sizeof(int32_t));
        if (s->class_values == NULL)
            goto oom;
        memcpy(s->class_values, d->class_values, (size_t)d->n_classes * sizeof(int32_t));
    }
    if (d->feature_names) {
        s->feature_names = calloc(d->n_features, sizeof(char *));
        if (s->feature_names == NULL)
            goto oom;
        for (size_t j = 0; j < d->n_features; j++)
            if ((s->feature_names[j] = strdup(d->feature_names[j])) == NULL)
                goto oom;
    }
    if (d->ids && (s->ids = malloc((n ? n : 1) * sizeof(int64_t))) == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        memcpy(s->x + i * d->n_features, d->x + rows[i] * d->n_features,
               d->n_features * sizeof(float));
        if (d->y)
            s->y[i] = d->y[rows[i]];
        if (d->ids)
            s->ids[i] = d->ids[rows[i]];
    }
    *out = s;
    return CN_OK;
oom:
    ds_dataset_free(s);
    return CN_ENOMEM;
}

void ds_class_counts(const ds_dataset *d, size_t *counts)
{
    memset(counts, 0, (size_t)d->n_classes * sizeof(size_t));
    for (size_t i = 0; i < d->n_rows; i++)
        counts[d->y[i]]++;
}
