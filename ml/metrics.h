// metrics.h: classification metrics from a confusion matrix, shared by the
// forest, the MLP and the report. The confusion matrix is (k, k) row-major,
// rows = true class, columns = predicted class.
#ifndef CANOPY_METRICS_H
#define CANOPY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"

// metrics_confusion fills cm (k*k, zeroed first) from labels in [0, k).
// Errors: CN_ERANGE if a label is outside [0, k); cm is then unspecified.
cn_err metrics_confusion(const int32_t *y_true, const int32_t *y_pred, size_t n, int k,
                         uint64_t *cm);

// Accuracy: trace / total. 0 when empty.
double metrics_accuracy(const uint64_t *cm, int k);
// Balanced accuracy: mean recall over classes present in y_true.
double metrics_balanced_accuracy(const uint64_t *cm, int k);
// Macro F1: mean F1 over classes present in y_true or y_pred (F1 = 0 when a
// class has no true positives).
double metrics_macro_f1(const uint64_t *cm, int k);

// metrics_format_confusion appends a labelled text table to out; labels may
// be NULL (class indices are printed).
cn_err metrics_format_confusion(const uint64_t *cm, int k, const int32_t *labels, cn_buf *out);

#endif
