// partition.h: splitting the rows of a labelled data set into parts for
// data-parallel workers and federated clients.
//
// Every scheme is deterministic given its seed, and every row lands in
// exactly one part. Schemes:
//   PART_IID        shuffle, then cut into n parts whose sizes differ by <= 1.
//   PART_DIRICHLET  label skew: for each class, proportions over the parts
//                   drawn from Dir(alpha) (Yurochkin et al. 2019; Flower's
//                   DirichletPartitioner, with its self-balancing: a part
//                   already holding N/n rows gets no more), redrawn until
//                   every part has at least min_size rows. Small alpha =
//                   strong skew; large alpha approaches IID.
//   PART_KLABELS    pathological non-IID (McMahan et al. 2017): rows sorted
//                   by label and cut into n*k shards that never straddle a
//                   label; part p gets k shards of k distinct labels, so no
//                   part holds more than k labels. Needs n*k >= n_classes
//                   (every class must go somewhere) and k <= n_classes.
//   PART_QUANTITY   quantity skew: sizes from a power law (power > 0: the
//                   p-th largest part gets weight (p+1)^-power, in shuffled
//                   order) or, with power == 0, from Dir(alpha); at least
//                   min_size rows each; labels IID (rows shuffled first).
//   PART_CONTIGUOUS rank slices [lo, hi) in row order, balanced (the
//                   data-parallel default when the data is already shuffled).
#ifndef CANOPY_PARTITION_H
#define CANOPY_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"

typedef enum {
    PART_IID,
    PART_DIRICHLET,
    PART_KLABELS,
    PART_QUANTITY,
    PART_CONTIGUOUS,
} part_kind;

// part_cfg describes a split. Plain data.
typedef struct part_cfg {
    part_kind kind;
    int n_parts;     // >= 1
    uint64_t seed;   // every random choice derives from it
    double alpha;    // DIRICHLET, QUANTITY (power == 0): concentration (> 0)
    size_t min_size; // DIRICHLET, QUANTITY: minimum rows per part
    int k;           // KLABELS: labels per part
    double power;    // QUANTITY: power-law exponent; 0 = Dirichlet sizes
    int max_tries;   // DIRICHLET: redraws before giving up (0 = 100)
} part_cfg;

// part_set is the result: for each part, an ascending array of row indices.
// Thread rule: immutable once returned.
typedef struct part_set {
    int n_parts;
    size_t n_rows; // rows partitioned (the sum of sizes)
    size_t *sizes; // (n_parts)
    size_t **rows; // rows[p]: (sizes[p]) row indices into the data set, ascending
} part_set;

// part_cfg_default fills cfg for kind with n parts: seed 0, alpha 0.5,
// min_size 10, k 2, power 0, max_tries 100.
void part_cfg_default(part_cfg *cfg, part_kind kind, int n_parts);

// part_kind_parse maps "iid" | "dirichlet" | "klabels" | "quantity" |
// "contiguous" to a kind; CN_EINVAL otherwise. part_kind_name is the inverse.
cn_err part_kind_parse(const char *name, part_kind *out);
const char *part_kind_name(part_kind kind);

// part_split partitions n_rows rows with labels y (class indices in
// [0, n_classes); may be NULL for IID, QUANTITY and CONTIGUOUS) into a new
// part set (part_set_free).
// Errors: CN_EINVAL (bad cfg, labels needed but NULL, a label out of range,
// n_parts * min_size > n_rows, k-labels constraints), CN_ERANGE (DIRICHLET:
// no draw met min_size within max_tries; lower min_size or raise alpha),
// CN_ENOMEM; err says which and how to fix it.
cn_err part_split(const part_cfg *cfg, const int32_t *y, size_t n_rows, int n_classes,
                  part_set **out, char *err, size_t errlen);

// part_set_free frees p. Accepts NULL.
void part_set_free(part_set *p);

// part_range writes the rank-th of n balanced contiguous slices of
// [0, n_rows) into [*lo, *hi): the first n_rows % n slices get one extra row.
void part_range(size_t n_rows, int n, int rank, size_t *lo, size_t *hi);

// part_class_counts fills counts ((n_parts, n_classes) row-major) with the
// number of rows of each class in each part.
void part_class_counts(const part_set *p, const int32_t *y, int n_classes, size_t *counts);

// part_summary appends a per-part table (size, labels present, class counts)
// to out. CN_OK or CN_ENOMEM.
cn_err part_summary(const part_set *p, const int32_t *y, int n_classes, cn_buf *out);

#endif
