// ds.h: an in-memory labelled data set, the common currency of ml/.
//
// Features are a dense float matrix, row-major; labels are class indices
// 0..n_classes-1 with the original label values kept for output (Cover_Type
// 1..7 stays 1..7 in predictions). CSV and IDX loaders produce one; the
// forest, the MLP, cross-validation and partitioning consume it.
// Thread rule: immutable after loading; any number of readers.
#ifndef CANOPY_DS_H
#define CANOPY_DS_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"

typedef struct ds_dataset {
    size_t n_rows;
    size_t n_features;
    float *x;              // (n_rows, n_features) row-major
    int32_t *y;            // (n_rows) class index, or NULL when the file had no labels
    int n_classes;         // number of distinct labels (0 when unlabelled)
    int32_t *class_values; // (n_classes) original label of each class index, ascending
    char **feature_names;  // (n_features) or NULL
    int64_t *ids;          // (n_rows) values of a dropped id column, or NULL
    char label_name[64];   // name of the label column ("Cover_Type"), "" if none
} ds_dataset;

// ds_dataset_new allocates a zeroed data set with room for n_rows x
// n_features features and, if labelled, n_rows labels. Returns NULL on OOM
// or when n_rows x n_features floats do not fit in size_t.
ds_dataset *ds_dataset_new(size_t n_rows, size_t n_features, int labelled);

// ds_dataset_free frees d and everything it owns. Accepts NULL.
void ds_dataset_free(ds_dataset *d);

// ds_dataset_subset copies rows[0..n) of d (in that order) into a new data
// set with the same classes and names. Errors: CN_ENOMEM, CN_ERANGE (a row
// index out of bounds).
cn_err ds_dataset_subset(const ds_dataset *d, const size_t *rows, size_t n, ds_dataset **out);

// ds_dataset_select_features keeps, in place, the features of d named
// names[0..n), in that order: afterwards feature j of every row is the one
// named names[j]. d must have feature_names. The names of d's features that
// are not in names are appended to ignored, comma-separated (NULL: not
// wanted). origin names d in messages.
// Errors, d unchanged: CN_ENOTFOUND when names holds names d lacks (err lists
// every one: "f.csv: no columns named A, B (2 of the 54 needed)"),
// CN_EINVAL when d has no feature names, CN_ENOMEM.
cn_err ds_dataset_select_features(ds_dataset *d, const char *const *names, size_t n,
                                  cn_buf *ignored, const char *origin, char *err, size_t errlen);

// ds_class_counts writes the number of rows of each class into counts
// (n_classes entries). d must be labelled.
void ds_class_counts(const ds_dataset *d, size_t *counts);

#endif
